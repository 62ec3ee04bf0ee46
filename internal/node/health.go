package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/servalnet/serval/internal/nodestatus"
)

// Health tracks whether the agent is alive and ready, for /liveness,
// /readiness and the status socket.
//
// Live means every registered worker (syncer, calculation, dataplane, BGP)
// has turned within its timeout. Ready means live, the datastore read in
// full and programmed into the kernel with the last attempt successful,
// and every BGP session that should be up Established (after a grace
// period). Each "no" comes with a reason in words. It is safe for
// concurrent use.
type Health struct {
	mu         sync.Mutex
	now        func() time.Time
	inSync     bool
	programmed bool
	lastErr    string
	workers    []*worker
	bgp        bgpHealth
	overlay    []string
}

// SetOverlayProblems records what the overlay refuses or lacks (an IPIP
// pool this kernel cannot serve, a missing tunnel address): the host is
// not ready while there are any, and each is a readiness reason.
func (h *Health) SetOverlayProblems(ps []string) {
	h.mu.Lock()
	h.overlay = slices.Clone(ps)
	h.mu.Unlock()
}

// worker is one loop liveness watches. A beating worker must call Beat
// within timeout, idle or not (its loop has a ticker). A callback worker
// (the calculation graph, driven by the syncer) may be idle for ever; it is
// stuck when one call into it lasts longer than timeout.
type worker struct {
	name      string
	timeout   time.Duration
	last      time.Time
	callback  bool
	busy      bool
	busySince time.Time
}

// Worker is the handle a loop beats through. Its methods do nothing on a
// nil Worker, so code can run without health.
type Worker struct {
	h *Health
	w *worker
}

// NewHealth returns a Health with no workers and BGP not watched.
func NewHealth(now func() time.Time) *Health {
	return &Health{now: now, bgp: bgpHealth{grace: DefaultBGPGrace, downSince: map[string]time.Time{}}}
}

// Register adds a worker that must beat at least every timeout.
func (h *Health) Register(name string, timeout time.Duration) *Worker {
	return h.add(&worker{name: name, timeout: timeout})
}

// RegisterCallback adds a worker that is called into (Enter, Leave) and is
// stuck only when a call lasts longer than timeout.
func (h *Health) RegisterCallback(name string, timeout time.Duration) *Worker {
	return h.add(&worker{name: name, timeout: timeout, callback: true})
}

func (h *Health) add(w *worker) *Worker {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.last = h.now()
	h.workers = append(h.workers, w)
	return &Worker{h: h, w: w}
}

// SetTimeout changes the timeout of the worker called name (FelixConfiguration's
// healthTimeoutOverrides); it reports whether there is such a worker.
func (h *Health) SetTimeout(name string, d time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.workers {
		if w.name == name {
			w.timeout = d
			return true
		}
	}
	return false
}

// Beat records that the worker's loop turns.
func (w *Worker) Beat() {
	if w == nil {
		return
	}
	w.h.mu.Lock()
	w.w.last = w.h.now()
	w.h.mu.Unlock()
}

// Enter records that a call into a callback worker has started.
func (w *Worker) Enter() {
	if w == nil {
		return
	}
	w.h.mu.Lock()
	w.w.busy, w.w.busySince = true, w.h.now()
	w.h.mu.Unlock()
}

// Leave records that the call has returned.
func (w *Worker) Leave() {
	if w == nil {
		return
	}
	w.h.mu.Lock()
	w.w.busy, w.w.last = false, w.h.now()
	w.h.mu.Unlock()
}

// SetInSync records whether the datastore view is complete.
func (h *Health) SetInSync(v bool) { h.mu.Lock(); h.inSync = v; h.mu.Unlock() }

// SetProgrammed records the outcome of the last dataplane apply.
func (h *Health) SetProgrammed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.lastErr = err.Error()
		return
	}
	h.programmed, h.lastErr = true, ""
}

// clock formats a time in a reason: the time of day, as servalctl shows
// session times.
func clock(t time.Time) string { return t.Local().Format("15:04:05") }

// Report returns the current health.
func (h *Health) Report() nodestatus.Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	r := nodestatus.Report{Live: true, InSync: h.inSync, Programmed: h.programmed, LastError: h.lastErr}
	for _, w := range h.workers {
		ws := nodestatus.Worker{Name: w.name, Timeout: w.timeout.String(), LastBeat: w.last}
		switch {
		case w.busy && now.Sub(w.busySince) > w.timeout:
			ws.Stuck, ws.Since = true, w.busySince
			r.Reasons = append(r.Reasons, fmt.Sprintf("worker %s is stuck: busy since %s (timeout %s)", w.name, clock(w.busySince), w.timeout))
		case !w.callback && now.Sub(w.last) > w.timeout:
			ws.Stuck, ws.Since = true, w.last
			r.Reasons = append(r.Reasons, fmt.Sprintf("worker %s is stuck: last turned at %s (timeout %s)", w.name, clock(w.last), w.timeout))
		}
		r.Live = r.Live && !ws.Stuck
		r.Workers = append(r.Workers, ws)
	}
	if !h.inSync {
		r.Reasons = append(r.Reasons, "datastore not in sync yet")
	}
	switch {
	case h.lastErr != "":
		r.Reasons = append(r.Reasons, "last dataplane apply failed: "+h.lastErr)
	case !h.programmed:
		r.Reasons = append(r.Reasons, "dataplane not programmed yet")
	}
	r.Reasons = append(r.Reasons, h.bgp.reasons(now)...)
	for _, p := range h.overlay {
		r.Reasons = append(r.Reasons, "overlay: "+p)
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// Handler serves /liveness and /readiness: 200 when true, 503 when not,
// with the report (reasons and workers) as the body.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(ok func(nodestatus.Report) bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			r := h.Report()
			w.Header().Set("Content-Type", "application/json")
			if !ok(r) {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(r)
		}
	}
	mux.Handle("/liveness", serve(func(r nodestatus.Report) bool { return r.Live }))
	mux.Handle("/readiness", serve(func(r nodestatus.Report) bool { return r.Ready }))
	return mux
}

// workerNames lists the registered workers, sorted (for messages).
func (h *Health) workerNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, w := range h.workers {
		out = append(out, w.name)
	}
	sort.Strings(out)
	return out
}
