package routing

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
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

func TestProtectedPrefixes(t *testing.T) {
	for _, tc := range []struct {
		v4, v6 string
		local  []string
		want   string
	}{
		{v4: "192.0.2.10/24", local: []string{"10.65.1.5", "10.65.9.7"},
			want: "10.65.1.5/32 10.65.9.7/32 192.0.2.0/24 192.0.2.10/32"},
		{v4: "192.0.2.10", v6: "2001:db8::10/64", local: []string{"fd00::7"},
			want: "192.0.2.10/32 2001:db8::/64 2001:db8::10/128 fd00::7/128"},
	} {
		node := &api.Node{Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: tc.v4, IPv6Address: tc.v6}}}
		var local []netip.Addr
		for _, b := range tc.local {
			local = append(local, netip.MustParseAddr(b))
		}
		var got []string
		for _, p := range protectedPrefixes(node, local) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("protectedPrefixes(%s %s) = %s, want %s", tc.v4, tc.v6, strings.Join(got, " "), tc.want)
		}
	}
}

// TestTakesOver: inside this host's blocks only other hosts' borrowed
// addresses (host routes) are programmed; a local workload's address, the
// host's own subnet and anything inside them never are.
func TestTakesOver(t *testing.T) {
	protected := []netip.Prefix{netip.MustParsePrefix("10.65.1.5/32"), netip.MustParsePrefix("192.0.2.0/24")}
	blocks := []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("fd00:65::/122")}
	for _, tc := range []struct {
		prefix string
		want   bool
	}{
		{"10.65.1.0/26", true},    // the block itself
		{"10.65.1.0/28", true},    // a part of it
		{"10.65.1.5/32", true},    // a local workload
		{"10.65.1.9/32", false},   // another host's workload borrowed from the block
		{"fd00:65::9/128", false}, // the same in IPv6
		{"fd00:65::/124", true},
		{"192.0.2.1/32", true},  // a neighbour on the host's subnet
		{"192.0.2.0/24", true},  // the subnet
		{"10.65.0.0/16", false}, // a pool that contains the block
		{"0.0.0.0/0", false},    // a default route
		{"10.65.2.0/26", false}, // another host's block
	} {
		if got := takesOver(netip.MustParsePrefix(tc.prefix), protected, blocks); got != tc.want {
			t.Errorf("takesOver(%s) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

// TestSpeakerOverlapNotProgrammed: a peer that announces a prefix inside
// one of this host's blocks, or inside the host's own subnet, does not get
// it into the kernel; what does not overlap is programmed, also outside
// the pools.
func TestSpeakerOverlapNotProgrammed(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 81, nil, "")
	c.addNode("b", 82, nil, "")
	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")}
	c.blocks["b"] = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/28"), netip.MustParsePrefix("10.65.2.0/26")}
	for _, cfg := range c.configs {
		if cfg.Name == "node.b" {
			cfg.Spec.ServiceExternalIPs = []api.ServiceIPBlock{{CIDR: "127.0.0.64/30"}, {CIDR: "10.99.0.0/24"}}
		}
	}
	a := c.startWith("a", func(cfg *Config) { cfg.ProgramOutsidePools = true })
	c.start("b")
	eventually(t, 20*time.Second, established(a, 1))
	eventually(t, 10*time.Second, ribHas(a, "10.65.1.0/28", "127.0.0.82"))
	eventually(t, 10*time.Second, ribHas(a, "127.0.0.64/30", "127.0.0.82"))
	eventually(t, 10*time.Second, kernelHas(a, "10.65.2.0/26 via 127.0.0.82 dev#1 proto 80\n10.99.0.0/24 via 127.0.0.82 dev#1 proto 80"))
	res, err := a.KernelState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Overlapping); got != "[10.65.1.0/28 127.0.0.64/30]" {
		t.Errorf("overlapping %s, want [10.65.1.0/28 127.0.0.64/30]", got)
	}
}

// TestSpeakerIncremental: once the kernel has been read, a prefix a peer
// announces or withdraws is programmed without reading the whole table
// again, and the periodic full sync still repairs what changed behind the
// speaker's back.
func TestSpeakerIncremental(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 91, nil, "")
	c.addNode("b", 92, nil, "")
	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")}
	a := c.start("a")
	b := c.startWith("b", func(cfg *Config) { cfg.ResyncInterval = time.Hour })
	eventually(t, 20*time.Second, established(b, 1))
	eventually(t, 10*time.Second, func() string {
		if got := b.nl.Dump(); got != "10.65.1.0/26 via 127.0.0.91 dev#1 proto 80" {
			return "b's kernel: " + got
		}
		return ""
	})
	b.nl.mu.Lock()
	lists := b.nl.Lists
	b.nl.mu.Unlock()

	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.2.0/26")}
	c.reconcile(a)
	eventually(t, 10*time.Second, func() string {
		if got := b.nl.Dump(); got != "10.65.2.0/26 via 127.0.0.91 dev#1 proto 80" {
			return "b's kernel: " + got
		}
		return ""
	})
	b.nl.mu.Lock()
	after := b.nl.Lists
	b.nl.mu.Unlock()
	if after != lists {
		t.Errorf("a withdrawal and an announcement read the kernel table %d times, want 0", after-lists)
	}
	// Removed behind the speaker's back: the next full sync puts it back.
	if err := b.nl.RouteDel(b.kernel.build(netip.MustParsePrefix("10.65.2.0/26"), []nexthop{{netip.MustParseAddr("127.0.0.91"), 1}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, kernelHas(b, "10.65.2.0/26 via 127.0.0.91 dev#1 proto 80"))
}

// TestSpeakerStatusWhileProgramming: while the speaker programs a large
// RIB into a kernel that does not answer, the status of its sessions still
// answers: kernel work has a goroutine of its own.
func TestSpeakerStatusWhileProgramming(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 93, nil, "")
	c.addNode("b", 94, nil, "")
	for i := range 1000 {
		c.blocks["a"] = append(c.blocks["a"], netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, byte(i / 4), byte(i%4) * 64}), 26))
	}
	c.start("a")
	b := c.start("b")
	gate := make(chan struct{})
	b.nl.mu.Lock()
	b.nl.WriteGate = gate
	b.nl.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	defer release()
	eventually(t, 20*time.Second, established(b, 1))
	eventually(t, 20*time.Second, func() string {
		b.nl.mu.Lock()
		defer b.nl.mu.Unlock()
		if b.nl.Held == 0 {
			return "no kernel write waiting yet"
		}
		return ""
	})
	// A route write is stuck in the kernel: status must still answer.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		peers, err := b.Status(ctx)
		cancel()
		if err != nil {
			t.Fatalf("status while a kernel write hangs: %v", err)
		}
		if len(peers) != 1 {
			t.Fatalf("status while a kernel write hangs: %d peers, want 1", len(peers))
		}
	}
	if n := b.nl.Len(); n >= 1000 {
		t.Fatalf("all %d routes were written while the gate was shut", n)
	}
	release()
	eventually(t, 30*time.Second, func() string {
		if n := b.nl.Len(); n < 1000 {
			return fmt.Sprintf("%d of 1000 routes in b's kernel", n)
		}
		return ""
	})
}

// TestSpeakerIncrementalECMP: a path that is not the best leaving an ECMP
// set changes the kernel route without a full sync (GoBGP sends no
// best-path event for it; the post-policy event marks the prefix).
func TestSpeakerIncrementalECMP(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 95, nil, "")
	c.addNode("b", 96, nil, "")
	c.addNode("c", 97, nil, "")
	anycast := netip.MustParsePrefix("10.65.200.0/24")
	c.blocks["a"] = []netip.Prefix{anycast}
	c.blocks["b"] = []netip.Prefix{anycast}
	c.start("a")
	b := c.start("b")
	cc := c.startWith("c", func(cfg *Config) { cfg.ResyncInterval = time.Hour })
	dump := func(want string) func() string {
		return func() string {
			if got := cc.nl.Dump(); got != want {
				return "c's kernel: " + got + ", want " + want
			}
			return ""
		}
	}
	eventually(t, 20*time.Second, established(cc, 2))
	eventually(t, 10*time.Second, dump("10.65.200.0/24 proto 80 nexthop via 127.0.0.95 dev#1 nexthop via 127.0.0.96 dev#1"))
	cc.nl.mu.Lock()
	lists := cc.nl.Lists
	cc.nl.mu.Unlock()

	// b (the higher router ID: not the best path) withdraws.
	c.blocks["b"] = nil
	c.reconcile(b)
	eventually(t, 10*time.Second, dump("10.65.200.0/24 via 127.0.0.95 dev#1 proto 80"))
	cc.nl.mu.Lock()
	defer cc.nl.mu.Unlock()
	if cc.nl.Lists != lists {
		t.Errorf("the withdrawal read the kernel table %d times, want 0", cc.nl.Lists-lists)
	}
}
