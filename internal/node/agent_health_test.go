package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/addrdetect"
	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/nodestatus"
)

// gate makes a fake kernel call hang: while hung, pass blocks until
// unhang, as a call on a wedged netlink socket would.
type gate struct {
	mu      sync.Mutex
	release chan struct{} // non-nil while hung
}

func (g *gate) hang() { g.mu.Lock(); g.release = make(chan struct{}); g.mu.Unlock() }

func (g *gate) unhang() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
}

func (g *gate) pass() {
	g.mu.Lock()
	r := g.release
	g.mu.Unlock()
	if r != nil {
		<-r
	}
}

// hangingNFT is a kernel whose reads can be made to hang.
type hangingNFT struct {
	*dataplane.FakeNFT
	gate
}

func (n *hangingNFT) Read() (*dataplane.Snapshot, error) {
	n.pass()
	return n.FakeNFT.Read()
}

// noHost is a host with no interfaces: the test gives the address.
type noHost struct{}

func (noHost) Interfaces() ([]addrdetect.Interface, error) { return nil, nil }
func (noHost) SourceFor(netip.Addr) (netip.Addr, error)    { return netip.Addr{}, nil }

// TestAgentLivenessDataplaneHangs runs the real agent (in-memory datastore,
// a fake kernel) and makes its dataplane loop hang in a kernel read:
// /liveness turns red within the worker's timeout and names the
// dataplane, then green again once the read returns.
func TestAgentLivenessDataplaneHangs(t *testing.T) {
	nft := &hangingNFT{FakeNFT: dataplane.NewFakeNFT()}
	defer nft.unhang()
	const timeout = 600 * time.Millisecond
	a, err := New(Config{
		NodeName: "node1", IPv4: "172.17.8.101/24", IPv6: "none",
		HealthTimeouts: map[string]time.Duration{
			WorkerSyncer: timeout, WorkerCalculation: timeout, WorkerDataplane: timeout,
		},
		HeartbeatInterval: 20 * time.Millisecond,
	}, Deps{
		Datastore: datastore.NewMemory(nil),
		Host:      noHost{},
		NewDataplane: func(after func(dataplane.ApplyResult)) (*dataplane.Dataplane, error) {
			// Resyncs (kernel reads) every 100ms, so the hang is met soon.
			return dataplane.New(dataplane.Options{NFT: nft, AfterApply: after, ResyncInterval: 100 * time.Millisecond})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		nft.unhang()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	srv := httptest.NewServer(a.Health.Handler())
	defer srv.Close()
	probe := func(path string) (int, nodestatus.Report) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r nodestatus.Report
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				_, r := probe("/readiness")
				t.Fatalf("not %s within %s; report %+v", what, within, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("ready", 10*time.Second, func() bool { c, _ := probe("/readiness"); return c == 200 })
	// Idle workers keep beating: the agent stays live for several timeouts.
	time.Sleep(3 * timeout)
	if c, r := probe("/liveness"); c != 200 {
		t.Fatalf("an idle agent is not live: %d %q", c, r.Reasons)
	}

	nft.hang()
	hungAt := time.Now()
	waitFor("red", 3*timeout+time.Second, func() bool { c, _ := probe("/liveness"); return c == 503 })
	// The timeout counts from the dataplane's last beat, which came up to
	// a beat interval (and a scheduling delay) before hang() here: allow
	// that much, and no more.
	if took, slack := time.Since(hungAt), 100*time.Millisecond; took < timeout-slack {
		t.Errorf("/liveness red %s after the hang, before the %s timeout (less %s for the last beat)", took, timeout, slack)
	}
	_, r := probe("/liveness")
	var stuck []string
	for _, w := range r.Workers {
		if w.Stuck {
			stuck = append(stuck, w.Name)
		}
	}
	if strings.Join(stuck, ",") != WorkerDataplane {
		t.Errorf("stuck workers %v, want only %s", stuck, WorkerDataplane)
	}
	if !strings.Contains(strings.Join(r.Reasons, "; "), "worker dataplane is stuck: last turned at") {
		t.Errorf("reasons %q do not name the dataplane", r.Reasons)
	}

	nft.unhang()
	waitFor("live again", 5*time.Second, func() bool { c, _ := probe("/liveness"); return c == 200 })
}
