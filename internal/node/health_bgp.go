package node

import (
	"context"
	"fmt"
	"time"

	"github.com/servalnet/serval/internal/nodestatus"
)

// DefaultBGPGrace is how long a BGP session that should be up may be down
// before the node is not ready: long enough for a restart's sessions to
// come up and for a peer's flap, short enough that a session that never
// comes up shows within a minute.
const DefaultBGPGrace = 60 * time.Second

// bgpHealth is the BGP part of readiness: the sessions the speaker has,
// and since when each that is not Established has been so. The speaker's
// own "since" moves on every connect retry, so Health keeps its own.
type bgpHealth struct {
	on        bool
	grace     time.Duration
	start     time.Time // when watching began
	answered  bool
	peers     []nodestatus.PeerStatus
	err       string
	downSince map[string]time.Time
}

// WatchBGP makes readiness cover BGP sessions from now on; grace <= 0 is
// DefaultBGPGrace.
func (h *Health) WatchBGP(grace time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if grace <= 0 {
		grace = DefaultBGPGrace
	}
	h.bgp.on, h.bgp.grace, h.bgp.start = true, grace, h.now()
}

// SetBGPSessions records the speaker's sessions (err: it did not answer;
// the last answer stands).
func (h *Health) SetBGPSessions(peers []nodestatus.PeerStatus, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.bgp.err = err.Error()
		return
	}
	now := h.now()
	h.bgp.answered, h.bgp.err, h.bgp.peers = true, "", peers
	seen := map[string]bool{}
	for _, p := range peers {
		seen[p.Address] = true
		if p.Info == "Established" || p.State == "down" {
			delete(h.bgp.downSince, p.Address)
			continue
		}
		if _, ok := h.bgp.downSince[p.Address]; !ok {
			h.bgp.downSince[p.Address] = now
		}
	}
	for a := range h.bgp.downSince {
		if !seen[a] {
			delete(h.bgp.downSince, a)
		}
	}
}

// reasons says which sessions keep the node from being ready. A session
// administratively down (State "down") is not expected up.
func (b *bgpHealth) reasons(now time.Time) []string {
	if !b.on || now.Sub(b.start) <= b.grace {
		return nil
	}
	if !b.answered {
		msg := "BGP speaker has not reported its sessions yet"
		if b.err != "" {
			msg += ": " + b.err
		}
		return []string{msg}
	}
	var out []string
	for _, p := range b.peers {
		since, down := b.downSince[p.Address]
		if !down || now.Sub(since) <= b.grace {
			continue
		}
		out = append(out, fmt.Sprintf("BGP session to %s (%s) is %s since %s", p.Address, p.Type, p.Info, clock(since)))
	}
	return out
}

// probeSpeaker asks the speaker for its sessions, and its kernel
// goroutine whether it answers, every interval, until ctx ends. Both
// answering is the speaker turning (its liveness beat), and the sessions
// are what readiness judges; a speaker either of whose goroutines does not
// answer within the worker's timeout is stuck.
func (a *Agent) probeSpeaker(ctx context.Context, w *Worker, interval, timeout time.Duration) {
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		peers, err := a.d.Speaker.Status(pctx)
		if err == nil {
			a.Health.SetBGPSessions(peerStatuses(peers), nil)
			// Both of the speaker's goroutines must answer: the BGP one
			// (Status) and the one that programs the kernel.
			if err = a.d.Speaker.Ping(pctx); err == nil {
				w.Beat()
			} else {
				a.d.Logger.Warn("the BGP speaker's kernel routes goroutine does not answer", "err", err)
			}
		} else {
			a.Health.SetBGPSessions(nil, fmt.Errorf("asking the BGP speaker for its sessions: %w", err))
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
