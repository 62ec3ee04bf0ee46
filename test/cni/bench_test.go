package cni_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// BenchmarkCNI measures CNI ADD and DEL latency as a runtime sees it
// (libcni executing the built serval plugin, which delegates to
// serval-ipam, against the embedded etcd), for 100 workloads one after
// another and for rounds of 20 workloads at once on one host. It reports
// p50 and p99 in milliseconds; run it with -benchtime 1x:
//
//	go test -run '^$' -bench CNI -benchtime 1x ./test/cni/
func BenchmarkCNI(b *testing.B) {
	requireRoot(b)
	b.Run("sequential-100", func(b *testing.B) {
		for range b.N {
			benchRound(b, 100, 1, 1)
		}
	})
	b.Run("concurrent-20", func(b *testing.B) {
		for range b.N {
			benchRound(b, 20, 20, 5)
		}
	})
}

// benchRound attaches n workloads, parallel at a time, then detaches
// them, rounds times, and reports latency percentiles.
func benchRound(b *testing.B, n, parallel, rounds int) {
	b.StopTimer()
	h := newHost(b)
	// Logging at debug to a file would be part of what is measured; a
	// runtime's default is warnings only.
	l := benchConf(b, h)
	var addLat, delLat []time.Duration
	for range rounds {
		rts := make([]*libcni.RuntimeConf, n)
		for i := range rts {
			rts[i], _ = workload(b)
		}
		addLat = append(addLat, runAll(b, rts, parallel, func(rt *libcni.RuntimeConf) error {
			_, err := h.add(b, l, rt)
			return err
		})...)
		delLat = append(delLat, runAll(b, rts, parallel, func(rt *libcni.RuntimeConf) error { return h.del(b, l, rt) })...)
	}
	for _, m := range []struct {
		name string
		lat  []time.Duration
	}{{"add", addLat}, {"del", delLat}} {
		slices.Sort(m.lat)
		b.ReportMetric(ms(pct(m.lat, 50)), m.name+"-p50-ms")
		b.ReportMetric(ms(pct(m.lat, 99)), m.name+"-p99-ms")
		b.Logf("%s: %d samples, p50 %.1f ms, p99 %.1f ms, max %.1f ms", m.name, len(m.lat),
			ms(pct(m.lat, 50)), ms(pct(m.lat, 99)), ms(m.lat[len(m.lat)-1]))
	}
}

func benchConf(b *testing.B, h *host) *libcni.NetworkConfigList {
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net-bench","plugins":[{"type":"serval","mtu_file":"/dev/null/serval-mtu","etcd_endpoints":%q,
		"nodename":%q,"ipam_lock_file":%q,"ipam":{"type":"serval-ipam"}}]}`, h.etcd, nodeName, h.ipamLock())
	l, err := libcni.NetworkConfFromBytes([]byte(conf))
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// runAll runs f for every runtime configuration, parallel at a time, and
// returns how long each call took.
func runAll(b *testing.B, rts []*libcni.RuntimeConf, parallel int, f func(*libcni.RuntimeConf) error) []time.Duration {
	lat := make([]time.Duration, len(rts))
	errs := make([]error, len(rts))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	b.StartTimer()
	for i, rt := range rts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			errs[i] = f(rt)
			lat[i] = time.Since(start)
		}()
	}
	wg.Wait()
	b.StopTimer()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("workload %d: %v", i, err)
		}
	}
	return lat
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
