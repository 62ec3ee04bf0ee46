package node

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

// recorder implements the few callbacks the test sends; any other call
// panics on the nil embedded interface, which fails the test.
type recorder struct {
	hoststate.Callbacks
	calls []string
}

func (r *recorder) OnIPSetRemove(id string)           { r.calls = append(r.calls, "set-remove "+id) }
func (r *recorder) OnLocalBlockUpdate(c netip.Prefix) { r.calls = append(r.calls, "block "+c.String()) }
func (r *recorder) OnPolicyRemove(id hoststate.PolicyID) {
	r.calls = append(r.calls, "policy-remove "+id.Name)
}
func (r *recorder) OnInSync() { r.calls = append(r.calls, "in-sync") }

func TestQueueKeepsOrderAndMergesWakeUps(t *testing.T) {
	q := NewQueue()
	q.OnLocalBlockUpdate(netip.MustParsePrefix("10.65.0.0/26"))
	q.OnIPSetRemove("s:abc")
	q.OnPolicyRemove(hoststate.PolicyID{Tier: "default", Name: "p1"})
	q.OnInSync()

	select {
	case <-q.Ready():
	default:
		t.Fatal("no wake-up after updates")
	}
	select {
	case <-q.Ready():
		t.Fatal("a burst of updates woke the dataplane more than once")
	default:
	}
	var r recorder
	if n := q.Drain(&r); n != 4 {
		t.Errorf("drained %d ops, want 4", n)
	}
	want := []string{"block 10.65.0.0/26", "set-remove s:abc", "policy-remove p1", "in-sync"}
	if !reflect.DeepEqual(r.calls, want) {
		t.Errorf("calls %v, want %v", r.calls, want)
	}
	if n := q.Drain(&r); n != 0 {
		t.Errorf("second drain returned %d ops", n)
	}
}
