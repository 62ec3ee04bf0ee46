package routing

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestSpeakerPrefixLimit: a peer that sends more prefixes than the limit
// is cut off, and none of its routes stay in the RIB or the kernel; a
// peer within the limit is not.
func TestSpeakerPrefixLimit(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 71, nil, "")
	c.addNode("b", 72, nil, "")
	c.addNode("d", 73, nil, "")
	for i := range 30 {
		c.blocks["a"] = append(c.blocks["a"], netip.MustParsePrefix(fmt.Sprintf("10.65.%d.0/26", i)))
	}
	c.blocks["d"] = []netip.Prefix{netip.MustParsePrefix("10.65.100.0/26")}
	c.start("a")
	d := c.start("d")
	b := c.startWith("b", func(cfg *Config) { cfg.MaxPrefixes = 20 })
	eventually(t, 20*time.Second, established(d, 2))

	// b hears d (1 prefix) and stays with it; a, with 30, is cut off
	// every time it comes back.
	eventually(t, 20*time.Second, ribHas(b, "10.65.100.0/26", "127.0.0.73"))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st {
			if p.Address == "127.0.0.71" && p.Info == "Established" && p.RoutesReceived > 20 {
				t.Fatalf("b holds %d routes from a, limit 20", p.RoutesReceived)
			}
		}
		rib, _ := b.RIB(context.Background())
		for p, nhs := range rib {
			for _, nh := range nhs {
				if nh == netip.MustParseAddr("127.0.0.71") && p.Addr().Is4() {
					t.Fatalf("b's RIB has %s from a, which is over the limit", p)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	eventually(t, 5*time.Second, kernelHas(b, "10.65.100.0/26 via 127.0.0.73 dev#1 proto 80"))
	st, _ := b.Status(context.Background())
	for _, p := range st {
		if p.Address == "127.0.0.71" && p.Info == "Established" {
			t.Errorf("b's session with a is up, although a sends 30 prefixes (limit 20): %+v", p)
		}
	}
	// d, without a limit of its own below 30, takes all of a's.
	eventually(t, 10*time.Second, ribHas(d, "10.65.29.0/26", "127.0.0.71"))
}
