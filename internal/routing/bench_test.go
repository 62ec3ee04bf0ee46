package routing

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkConvergence measures how long it takes, from Reconcile on host
// a with N new blocks, until host b has learned all of them over an
// established iBGP session on loopback and programmed them into its
// (fake) kernel. Withdrawal of the N blocks is measured too, and both are
// reported per operation as ms-to-learn and ms-to-withdraw.
//
//	go test -run '^$' -bench Convergence -benchtime 5x ./internal/routing/
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			c := newCluster(b, true)
			c.addNode("a", 71, nil, "")
			c.addNode("b", 72, nil, "")
			sa, sb := c.start("a"), c.start("b")
			eventually(b, 20*time.Second, established(sa, 1))
			blocks := make([]netip.Prefix, n)
			for i := range blocks {
				// /26 blocks of 10.65.0.0/16: 1024 of them, then on into
				// 10.66 and beyond, all inside the pool widened below.
				blocks[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + i/1024), byte(i % 1024 / 4), byte(i % 4 * 64)}), 26)
			}
			c.pools[0].Spec.CIDR = "10.64.0.0/10"
			c.reconcile(sb)
			wait := func(want int) {
				deadline := time.Now().Add(60 * time.Second)
				for sb.nl.Len() != want {
					if time.Now().After(deadline) {
						b.Fatalf("b has %d routes, want %d", sb.nl.Len(), want)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			var learn, withdraw time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.blocks["a"] = blocks
				start := time.Now()
				if err := sa.Reconcile(context.Background(), c.desired("a")); err != nil {
					b.Fatal(err)
				}
				wait(n)
				learn += time.Since(start)

				c.blocks["a"] = nil
				start = time.Now()
				if err := sa.Reconcile(context.Background(), c.desired("a")); err != nil {
					b.Fatal(err)
				}
				wait(0)
				withdraw += time.Since(start)
			}
			b.ReportMetric(float64(learn.Milliseconds())/float64(b.N), "ms-to-learn")
			b.ReportMetric(float64(withdraw.Milliseconds())/float64(b.N), "ms-to-withdraw")
		})
	}
}
