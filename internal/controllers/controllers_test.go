package controllers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/servalnet/serval/internal/controllers/ipamgc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
)

// countingIPAM counts the collector's reads of the IPAM state: a replica
// that acts reads it.
type countingIPAM struct {
	*ipam.Client
	scans atomic.Int64
}

func (c *countingIPAM) State(ctx context.Context) (*ipam.State, error) {
	c.scans.Add(1)
	return c.Client.State(ctx)
}

type replica struct {
	name    string
	ipam    *countingIPAM
	reg     *prometheus.Registry
	leading atomic.Bool
	cancel  context.CancelFunc
	done    chan error
}

// TestOnlyTheLeaseHolderActs runs two replicas on one API server: one
// leads and scans, the other waits without touching IPAM; when the leader
// stops, the other takes over.
func TestOnlyTheLeaseHolderActs(t *testing.T) {
	kube := fake.NewClientset()
	ds := datastore.NewMemory(nil)
	t.Cleanup(func() { ds.Close() })
	var mu sync.Mutex
	both := false
	var reps []*replica
	for _, name := range []string{"a", "b"} {
		r := &replica{name: name, ipam: &countingIPAM{Client: ipam.New(ds, ipam.Config{})}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		reps = append(reps, r)
	}
	for _, r := range reps {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		t.Cleanup(cancel)
		go func() {
			r.done <- Run(ctx, Options{Kube: kube, IPAM: r.ipam, Identity: r.name, Registry: r.reg,
				LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
				GC: ipamgc.Config{ScanInterval: 20 * time.Millisecond},
				OnLeading: func(on bool) {
					r.leading.Store(on)
					mu.Lock()
					defer mu.Unlock()
					if reps[0].leading.Load() && reps[1].leading.Load() {
						both = true
					}
				}})
		}()
	}
	waitFor(t, "a leader", func() bool { return reps[0].leading.Load() || reps[1].leading.Load() })
	leader, standby := reps[0], reps[1]
	if !leader.leading.Load() {
		leader, standby = standby, leader
	}
	waitFor(t, "the leader to scan", func() bool { return leader.ipam.scans.Load() >= 3 })
	if n := standby.ipam.scans.Load(); n != 0 {
		t.Errorf("the standby replica %s scanned %d times while %s led", standby.name, n, leader.name)
	}
	if got := testutil.ToFloat64(gauge(t, leader.reg)); got != 1 {
		t.Errorf("leader gauge of the leader = %v, want 1", got)
	}

	// The leader stops (and gives up the Lease): the standby takes over.
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Errorf("Run of the stopped leader: %v", err)
	}
	if leader.leading.Load() {
		t.Error("the stopped replica still says it leads")
	}
	before := leader.ipam.scans.Load()
	waitFor(t, "the standby to take over and scan", func() bool { return standby.leading.Load() && standby.ipam.scans.Load() >= 3 })
	if n := leader.ipam.scans.Load(); n != before {
		t.Errorf("the stopped replica scanned %d more times", n-before)
	}
	mu.Lock()
	defer mu.Unlock()
	if both {
		t.Error("both replicas led at once")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	if err := Run(context.Background(), Options{}); err == nil {
		t.Error("Run without a client succeeded")
	}
	err := Run(context.Background(), Options{Kube: fake.NewClientset(), IPAM: &countingIPAM{}, Identity: "x", MetricsAddr: "256.0.0.1:1"})
	if err == nil {
		t.Error("Run with an unusable metrics address succeeded")
	}
}

func gauge(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "serval", Subsystem: "controllers", Name: "leader",
		Help: "1 while this replica holds the serval-controllers Lease and runs the controllers, else 0."})
	err := reg.Register(g)
	var are prometheus.AlreadyRegisteredError
	if !asAlreadyRegistered(err, &are) {
		t.Fatalf("the leader gauge is not registered (%v)", err)
	}
	return are.ExistingCollector
}

func asAlreadyRegistered(err error, out *prometheus.AlreadyRegisteredError) bool {
	a, ok := err.(prometheus.AlreadyRegisteredError)
	if ok {
		*out = a
	}
	return ok
}

// waitFor polls cond generously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := ipamgc.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Reclaimed.WithLabelValues("address").Add(3)
	var wg sync.WaitGroup
	srv, addr, err := serveMetrics("127.0.0.1:0", reg, slog.New(slog.DiscardHandler), &wg)
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Wait()
	defer srv.Close()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	for _, want := range []string{`serval_ipam_gc_reclaimed_total{kind="address"} 3`, `serval_ipam_gc_candidates{kind="block"} 0`,
		"serval_ipam_gc_scans_total 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if _, err := ipamgc.NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}
