package node

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/admission"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/routing"
	"github.com/servalnet/serval/internal/synthload"
)

// nullNFT takes every transaction and keeps nothing: the benchmark
// measures serval-node's own work, not the kernel's.
type nullNFT struct{}

func (nullNFT) Apply([]dataplane.Op) error { return nil }
func (nullNFT) Read() (*dataplane.Snapshot, error) {
	return &dataplane.Snapshot{Chains: map[string]*dataplane.ChainState{}, Sets: map[string]*dataplane.SetState{}}, nil
}

// BenchmarkColdSync is serval-node's start at scale without etcd and
// without a kernel: an in-memory datastore listed by the syncer, the
// calculation graph, the dataplane rendering and planning one transaction
// that goes nowhere. It reports the time to the first in-sync Apply, the
// peak heap in use during it (sampled) and the heap left after it.
// SERVAL_BENCH_REMOTE sets the number of remote endpoints (default
// 100,000, with 250 local endpoints and 2,000 policies).
func BenchmarkColdSync(b *testing.B) {
	remote := 100_000
	if v, err := strconv.Atoi(os.Getenv("SERVAL_BENCH_REMOTE")); err == nil {
		remote = v
	}
	ds := datastore.NewMemory(nil)
	if err := synthload.Write(context.Background(), ds, synthload.Spec{Node: "benchnode", Local: 250, Remote: remote, Policies: 2000}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var once sync.Once
		dp, err := dataplane.New(dataplane.Options{NFT: nullNFT{}, AfterApply: func(r dataplane.ApplyResult) {
			if r.InSync && r.Err == nil {
				once.Do(func() { close(done) })
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		g := calc.New("benchnode", dp, nil)
		// BGP on, as a user gets it: the BGP loop fed by the same syncer
		// (its speaker has no kernel: the benchmark measures the agent).
		feed := newTee()
		feed.add(g, calc.Kinds())
		sp := routing.NewSpeaker(routing.Config{})
		bgp := newBGPLoop("benchnode", sp, nil, slog.New(slog.DiscardHandler), NewMetrics())
		feed.add(bgp, bgpKinds)
		// As the agent: every object is validated on its way in.
		sy := datastore.NewSyncer(ds, admission.NewFilter(feed, admission.NewRegistry(), nil), datastore.SyncerConfig{Kinds: feed.kinds()})
		var peak uint64
		stopSampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				select {
				case <-t.C:
				case <-stopSampling:
					return
				}
			}
		}()
		start := time.Now()
		go func() { _ = sy.Run(ctx) }()
		go func() { _ = dp.Run(ctx) }()
		go bgp.run(ctx)
		<-done
		took := time.Since(start)
		close(stopSampling)
		<-sampled
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if p := os.Getenv("SERVAL_BENCH_HEAPPROFILE"); p != "" {
			// What stays in use once programmed, for go tool pprof.
			if f, err := os.Create(p); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		cancel()
		b.ReportMetric(took.Seconds(), "s-to-programmed")
		b.ReportMetric(float64(peak-min(peak, base.HeapInuse))/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(after.HeapAlloc-min(after.HeapAlloc, base.HeapAlloc))/(1<<20), "live-heap-MiB")
		runtime.KeepAlive(g)
		runtime.KeepAlive(dp)
		runtime.KeepAlive(bgp)
	}
}
