package node

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
)

// nullNFT takes every transaction and keeps nothing: the benchmark
// measures serval-node's own work, not the kernel's.
type nullNFT struct{}

func (nullNFT) Apply([]dataplane.Op) error { return nil }
func (nullNFT) Read() (*dataplane.Snapshot, error) {
	return &dataplane.Snapshot{Chains: map[string]*dataplane.ChainState{}, Sets: map[string]*dataplane.SetState{}}, nil
}

// loadScale writes the agent load of bench/ (servalbench agentload) into
// ds: local endpoints on "benchnode", remote ones on 500 other hosts,
// global policies each selecting a tenth of the endpoints with rules over
// 50 distinct selectors.
func loadScale(b *testing.B, ds datastore.Interface, local, remote, policies int) {
	ctx := context.Background()
	objs := make(chan api.Resource, 256)
	var wg sync.WaitGroup
	var failed sync.Once
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range objs {
				if _, err := ds.Create(ctx, o); err != nil {
					failed.Do(func() { b.Error(err) })
				}
			}
		}()
	}
	for i := 0; i < local+remote; i++ {
		n, pod := "benchnode", fmt.Sprintf("w%d", i)
		if i >= local {
			n = fmt.Sprintf("host%d", i%500)
		}
		w := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"}}
		w.Name, w.Namespace = fmt.Sprintf("%s-k8s-%s-eth0", n, pod), fmt.Sprintf("ns%d", i%20)
		w.Labels = map[string]string{"app": fmt.Sprintf("app%d", i%10), "role": fmt.Sprintf("r%d", i%50)}
		w.Spec = api.WorkloadEndpointSpec{Node: n, Orchestrator: "k8s", Pod: pod, Endpoint: "eth0",
			InterfaceName: fmt.Sprintf("calib%d", i), IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 100+(i>>16)&0xff, (i>>8)&0xff, i&0xff)}}
		objs <- w
	}
	for i := range policies {
		p := &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy"}}
		p.Name = fmt.Sprintf("gnp%d", i)
		order := float64(i)
		proto := api.ProtocolFromString("TCP")
		p.Spec.Selector = fmt.Sprintf("app == 'app%d'", i%10)
		p.Spec.Order = &order
		p.Spec.Ingress = []api.Rule{{Action: api.Allow, Protocol: &proto,
			Source:      api.EntityRule{Selector: fmt.Sprintf("role == 'r%d'", i%50)},
			Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(1000 + i%100)}}}}
		objs <- p
	}
	close(objs)
	wg.Wait()
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
	loadScale(b, ds, 250, remote, 2000)
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
		sy := datastore.NewSyncer(ds, g, datastore.SyncerConfig{Kinds: calc.Kinds()})
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
	}
}
