package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/servalnet/serval/internal/routing"
)

// hangingNetlink is a route table whose reads can be made to hang.
type hangingNetlink struct {
	*routing.FakeNetlink
	gate
}

func (n *hangingNetlink) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	n.pass()
	return n.FakeNetlink.RouteListFiltered(family, filter, mask)
}

// TestProbeSpeakerKernelHangs: the speaker's BGP goroutine keeps
// answering while its kernel goroutine is stuck in a netlink read; the
// bgp-speaker worker still goes stuck within its timeout, and live again
// once the read returns.
func TestProbeSpeakerKernelHangs(t *testing.T) {
	nl := &hangingNetlink{FakeNetlink: routing.NewFakeNetlink()}
	defer nl.unhang()
	// A full kernel sync (a route table read) every 50ms meets the hang soon.
	sp := routing.NewSpeaker(routing.Config{Netlink: nl, ResyncInterval: 50 * time.Millisecond, RetryInterval: 50 * time.Millisecond})
	defer sp.Stop()
	h := NewHealth(time.Now)
	const timeout = 400 * time.Millisecond
	w := h.Register(WorkerBGPSpeaker, timeout)
	a := &Agent{d: Deps{Speaker: sp, Logger: slog.New(slog.DiscardHandler)}, Health: h}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.probeSpeaker(ctx, w, 50*time.Millisecond, timeout) }()
	defer func() { cancel(); nl.unhang(); <-done }()

	stuck := func() bool {
		for _, ws := range h.Report().Workers {
			if ws.Name == WorkerBGPSpeaker {
				return ws.Stuck
			}
		}
		t.Fatalf("no %s worker in the report", WorkerBGPSpeaker)
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(3 * timeout)
	if stuck() {
		t.Fatal("an idle speaker is stuck")
	}
	nl.hang()
	waitFor("the speaker stuck while its kernel goroutine hangs", stuck)
	if _, err := sp.Status(context.Background()); err != nil {
		t.Fatalf("the BGP goroutine should still answer: %v", err)
	}
	nl.unhang()
	waitFor("the speaker live again", func() bool { return !stuck() })
}
