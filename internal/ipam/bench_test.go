package ipam_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
	"github.com/servalnet/serval/internal/ipam"
)

// benchEtcd starts an embedded etcd with one /16 pool and returns a
// datastore on it.
func benchEtcd(b *testing.B) datastore.Interface {
	b.Helper()
	ctx := context.Background()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: b.TempDir(),
		ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ds.Close() })
	if _, err := ds.Create(ctx, ippool("bench", "10.0.0.0/12", 26)); err != nil {
		b.Fatal(err)
	}
	return ds
}

// BenchmarkAutoAssignEtcd measures allocations per second (one address,
// one handle each) on an embedded etcd: sequentially, and from 8
// goroutines on 4 hosts. Run with:
//
//	go test -run '^$' -bench AutoAssignEtcd -benchtime 2000x ./internal/ipam/
func BenchmarkAutoAssignEtcd(b *testing.B) {
	for _, bc := range []struct{ workers, hosts int }{{1, 1}, {8, 4}, {8, 8}} {
		workers, hosts := bc.workers, bc.hosts
		b.Run(fmt.Sprintf("goroutines=%d/hosts=%d", workers, hosts), func(b *testing.B) {
			ds := benchEtcd(b)
			c := ipam.New(ds, ipam.Config{})
			ctx := context.Background()
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					host := fmt.Sprint("host", w%hosts)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := c.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprint("h", i), Node: host}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "allocs/s")
		})
	}
}

// BenchmarkDatastoreOpsEtcd is the floor under IPAM's figures: one
// datastore read and one conditional write of a block-sized resource.
func BenchmarkDatastoreOpsEtcd(b *testing.B) {
	ds := benchEtcd(b)
	ctx := context.Background()
	key := api.Key{Kind: "IPPool", Name: "bench"}
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			if _, err := ds.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		r, _ := ds.Get(ctx, key)
		for b.Loop() {
			var err error
			if r, err = ds.Update(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// slowStore delays every datastore call by a fixed time, as a datastore
// one network round trip away would: with it, an allocation's latency
// counts the round trips it waits for one after another, whatever the
// machine's load.
type slowStore struct {
	datastore.Interface
	rtt time.Duration
}

func (s slowStore) Get(ctx context.Context, k api.Key) (api.Resource, error) {
	time.Sleep(s.rtt)
	return s.Interface.Get(ctx, k)
}

func (s slowStore) List(ctx context.Context, o datastore.ListOptions) (*datastore.ListResult, error) {
	time.Sleep(s.rtt)
	return s.Interface.List(ctx, o)
}

func (s slowStore) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	time.Sleep(s.rtt)
	return s.Interface.Create(ctx, r)
}

func (s slowStore) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	time.Sleep(s.rtt)
	return s.Interface.Update(ctx, r)
}

func (s slowStore) Delete(ctx context.Context, k api.Key, rv string) (api.Resource, error) {
	time.Sleep(s.rtt)
	return s.Interface.Delete(ctx, k, rv)
}

// BenchmarkAutoAssignRoundTrips reports how many datastore round trips one
// allocation waits for in a row ("rtts/op": its latency over a 2 ms
// round trip), for a long-lived client (it remembers the node's last
// block), for a fresh client per allocation, and for a fresh client as
// the CNI plugin makes one per ADD (ReuseHandle, the host lock), without
// and with the last block it used (SetHint). Run with:
//
//	go test -run '^$' -bench AutoAssignRoundTrips -benchtime 200x ./internal/ipam/
func BenchmarkAutoAssignRoundTrips(b *testing.B) {
	const rtt = 2 * time.Millisecond
	for _, bc := range []struct {
		name         string
		fresh, cni   bool
		keepLastHint bool
	}{
		{"long-lived", false, false, false},
		{"fresh-client", true, false, false},
		{"fresh-cni", true, true, false},
		{"fresh-cni-hinted", true, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mem := datastore.NewMemory(nil)
			b.Cleanup(func() { mem.Close() })
			ctx := context.Background()
			if _, err := mem.Create(ctx, ippool("bench", "10.0.0.0/12", 26)); err != nil {
				b.Fatal(err)
			}
			ds := slowStore{Interface: mem, rtt: rtt}
			c := ipam.New(ds, ipam.Config{})
			// The node's first block exists before the clock starts.
			if _, err := c.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "h0", Node: "host0"}); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				if bc.fresh {
					last := c.Hint("host0", 32)
					c = ipam.New(ds, ipam.Config{})
					if bc.keepLastHint {
						c.SetHint("host0", last)
					}
				}
				args := ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprint("h", i+1), Node: "host0"}
				if bc.cni {
					args.ReuseHandle, args.Lock = true, func() func() { return func() {} }
				}
				if _, err := c.AutoAssign(ctx, args); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start))/float64(b.N)/float64(rtt), "rtts/op")
		})
	}
}
