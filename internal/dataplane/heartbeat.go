package dataplane

import "time"

// heartbeat is Run's liveness hook: serval-node's /liveness turns red when
// the apply loop stops turning, so Run calls f on every turn and, while it
// idles, at least every interval.
type heartbeat struct {
	f        func()
	interval time.Duration
}

// SetHeartbeat makes Run call f from its goroutine at least every interval
// while it turns (after each Apply and while idle). Call it before Run.
func (d *Dataplane) SetHeartbeat(f func(), interval time.Duration) {
	d.heartbeat = heartbeat{f: f, interval: interval}
}

func (h heartbeat) beat() {
	if h.f != nil {
		h.f()
	}
}

// arm returns the channel of the next idle beat; nil (never) without a
// heartbeat.
func (h heartbeat) arm(c Clock) <-chan time.Time {
	if h.f == nil || h.interval <= 0 {
		return nil
	}
	return c.After(h.interval)
}
