package node

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Health tracks whether the agent is alive and ready, for /liveness and
// /readiness. Readiness means: the datastore has been read in full and what
// it says has been programmed into the kernel at least once, and the last
// attempt to program it succeeded. It is safe for concurrent use.
type Health struct {
	mu         sync.Mutex
	now        func() time.Time
	inSync     bool
	programmed bool
	lastErr    string
	lastBeat   time.Time
	stallTime  time.Duration
	overlay    []string
}

// SetOverlayProblems records what the overlay refuses or lacks (an IPIP
// pool this kernel cannot serve, a missing tunnel address): the host is
// not ready while there are any, and the report says why.
func (h *Health) SetOverlayProblems(ps []string) {
	h.mu.Lock()
	h.overlay = slices.Clone(ps)
	h.mu.Unlock()
}

// NewHealth returns a Health that calls the agent dead when its main loop
// has not reported for stallTime.
func NewHealth(now func() time.Time, stallTime time.Duration) *Health {
	return &Health{now: now, stallTime: stallTime, lastBeat: now()}
}

// Beat records that the main loop is turning.
func (h *Health) Beat() { h.mu.Lock(); h.lastBeat = h.now(); h.mu.Unlock() }

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

// Report is the health as JSON clients see it.
type Report struct {
	Live       bool   `json:"live"`
	Ready      bool   `json:"ready"`
	InSync     bool   `json:"inSync"`
	Programmed bool   `json:"programmed"`
	LastError  string `json:"lastError,omitempty"`
	// OverlayProblems are why the overlay cannot do what the pools ask.
	OverlayProblems []string `json:"overlayProblems,omitempty"`
}

// Report returns the current health.
func (h *Health) Report() Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	live := h.now().Sub(h.lastBeat) < h.stallTime
	return Report{
		Live:       live,
		Ready:      live && h.inSync && h.programmed && h.lastErr == "" && len(h.overlay) == 0,
		InSync:     h.inSync,
		Programmed: h.programmed,
		LastError:  h.lastErr,

		OverlayProblems: slices.Clone(h.overlay),
	}
}

// Handler serves /liveness and /readiness: 200 when true, 503 when not,
// with the report as the body.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(ok func(Report) bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			r := h.Report()
			w.Header().Set("Content-Type", "application/json")
			if !ok(r) {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(r)
		}
	}
	mux.Handle("/liveness", serve(func(r Report) bool { return r.Live }))
	mux.Handle("/readiness", serve(func(r Report) bool { return r.Ready }))
	return mux
}
