package node

import (
	"net/netip"
	"sync"

	"github.com/servalnet/serval/internal/hoststate"
)

// Queue carries the calculation graph's output to the dataplane goroutine.
// The graph (on the syncer's goroutine) calls its hoststate.Callbacks
// methods, which only record the call; the dataplane goroutine takes every
// recorded call at once with Drain, replays them into the dataplane and
// applies them as one batch. Ready is a size-1 channel: a burst of updates
// wakes the dataplane once.
type Queue struct {
	mu    sync.Mutex
	ops   []func(hoststate.Callbacks)
	ready chan struct{}
}

// NewQueue returns an empty queue.
func NewQueue() *Queue { return &Queue{ready: make(chan struct{}, 1)} }

// Ready signals that Drain has something to return.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Drain replays every recorded call, in order, into cb and reports how many
// there were.
func (q *Queue) Drain(cb hoststate.Callbacks) int {
	q.mu.Lock()
	ops := q.ops
	q.ops = nil
	q.mu.Unlock()
	for _, op := range ops {
		op(cb)
	}
	return len(ops)
}

func (q *Queue) add(op func(hoststate.Callbacks)) {
	q.mu.Lock()
	q.ops = append(q.ops, op)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // a wake-up is already pending; it will see this op too
	}
}

var _ hoststate.Callbacks = (*Queue)(nil)

func (q *Queue) OnIPSetUpdate(s hoststate.IPSet) {
	q.add(func(cb hoststate.Callbacks) { cb.OnIPSetUpdate(s) })
}
func (q *Queue) OnIPSetDelta(id string, added, removed []hoststate.IPSetMember) {
	q.add(func(cb hoststate.Callbacks) { cb.OnIPSetDelta(id, added, removed) })
}
func (q *Queue) OnIPSetRemove(id string) { q.add(func(cb hoststate.Callbacks) { cb.OnIPSetRemove(id) }) }
func (q *Queue) OnPolicyUpdate(p hoststate.Policy) {
	q.add(func(cb hoststate.Callbacks) { cb.OnPolicyUpdate(p) })
}
func (q *Queue) OnPolicyRemove(id hoststate.PolicyID) {
	q.add(func(cb hoststate.Callbacks) { cb.OnPolicyRemove(id) })
}
func (q *Queue) OnProfileUpdate(p hoststate.Profile) {
	q.add(func(cb hoststate.Callbacks) { cb.OnProfileUpdate(p) })
}
func (q *Queue) OnProfileRemove(name string) {
	q.add(func(cb hoststate.Callbacks) { cb.OnProfileRemove(name) })
}
func (q *Queue) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) {
	q.add(func(cb hoststate.Callbacks) { cb.OnWorkloadEndpointUpdate(ep) })
}
func (q *Queue) OnWorkloadEndpointRemove(id hoststate.EndpointID) {
	q.add(func(cb hoststate.Callbacks) { cb.OnWorkloadEndpointRemove(id) })
}
func (q *Queue) OnHostEndpointUpdate(ep hoststate.HostEndpoint) {
	q.add(func(cb hoststate.Callbacks) { cb.OnHostEndpointUpdate(ep) })
}
func (q *Queue) OnHostEndpointRemove(id hoststate.EndpointID) {
	q.add(func(cb hoststate.Callbacks) { cb.OnHostEndpointRemove(id) })
}
func (q *Queue) OnIPPoolUpdate(name string, p hoststate.IPPool) {
	q.add(func(cb hoststate.Callbacks) { cb.OnIPPoolUpdate(name, p) })
}
func (q *Queue) OnIPPoolRemove(name string) {
	q.add(func(cb hoststate.Callbacks) { cb.OnIPPoolRemove(name) })
}
func (q *Queue) OnLocalBlockUpdate(cidr netip.Prefix) {
	q.add(func(cb hoststate.Callbacks) { cb.OnLocalBlockUpdate(cidr) })
}
func (q *Queue) OnLocalBlockRemove(cidr netip.Prefix) {
	q.add(func(cb hoststate.Callbacks) { cb.OnLocalBlockRemove(cidr) })
}
func (q *Queue) OnConfigUpdate(c hoststate.Config) {
	q.add(func(cb hoststate.Callbacks) { cb.OnConfigUpdate(c) })
}
func (q *Queue) OnInSync() { q.add(func(cb hoststate.Callbacks) { cb.OnInSync() }) }
