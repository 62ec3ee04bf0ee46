package dataplane

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/hoststate"
)

// manualClock hands out timers that fire only when the test says so.
type manualClock struct {
	mu     sync.Mutex
	timers map[time.Duration][]chan time.Time
}

func (c *manualClock) Now() time.Time { return time.Unix(0, 0) }

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers[d] = append(c.timers[d], ch)
	return ch
}

// armed reports the durations with a pending timer.
func (c *manualClock) armed() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for d, ts := range c.timers {
		if len(ts) > 0 {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// fire fires the pending timers of duration d.
func (c *manualClock) fire(d time.Duration) {
	c.mu.Lock()
	ts := c.timers[d]
	c.timers[d] = nil
	c.mu.Unlock()
	for _, ch := range ts {
		ch <- time.Unix(0, 0)
	}
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !f(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRefreshIntervals: FelixConfiguration's refresh intervals arm the
// periodic resyncs (zero disables one), the nftables one repairs the
// table, the interface one sets the interface settings again.
func TestRefreshIntervals(t *testing.T) {
	clk := &manualClock{timers: map[time.Duration][]chan time.Time{}}
	nft, sc := NewFakeNFT(), &lockedSysctl{f: NewFakeSysctl()}
	var mu sync.Mutex
	applied := 0
	d, err := New(Options{NFT: nft, Sysctl: sc, Clock: clk, ResyncInterval: time.Hour, AfterApply: func(ApplyResult) {
		mu.Lock()
		applied++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	applies := func() int { mu.Lock(); defer mu.Unlock(); return applied }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	eventually(t, "default timers", func() bool {
		return slices.Equal(clk.armed(), []time.Duration{defaultRouteRefresh, time.Hour})
	})
	nftI, ifI, zero := 7*time.Second, 11*time.Second, time.Duration(0)
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, NftablesRefreshInterval: &nftI, InterfaceRefreshInterval: &ifI, RouteRefreshInterval: &zero})
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil))
	d.OnInSync()
	eventually(t, "configured timers", func() bool {
		a := clk.armed()
		return slices.Contains(a, nftI) && slices.Contains(a, ifI) && applies() > 0
	})
	// The route timer armed before is stale now: firing it may apply
	// once, but it is not armed again.
	clk.fire(defaultRouteRefresh)
	want := nft.Dump()
	nft.DeleteRule(chainForward, 0)
	n := applies()
	clk.fire(nftI)
	eventually(t, "nftables refresh", func() bool { return applies() > n && nft.Dump() == want })
	writes := len(sc.writes())
	clk.fire(ifI)
	eventually(t, "interface refresh", func() bool {
		w := sc.writes()
		return len(w) > writes && slices.Contains(w[writes:], "net/ipv4/conf/cali1/proxy_arp=1")
	})
	if a := clk.armed(); slices.Contains(a, defaultRouteRefresh) || slices.Contains(a, zero) {
		t.Errorf("route refresh armed though disabled: %v", a)
	}
}

// lockedSysctl lets a test read the writes while Run makes them.
type lockedSysctl struct {
	mu sync.Mutex
	f  *FakeSysctl
}

func (l *lockedSysctl) Set(name, value string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Set(name, value)
}

func (l *lockedSysctl) writes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.f.Writes)
}

func TestIPForwardingDisabled(t *testing.T) {
	d := newTestDP(t)
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, IPForwardingDisabled: true})
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil))
	d.apply(t)
	for _, w := range d.sysctl.Writes {
		if strings.HasPrefix(w, "net/ipv4/ip_forward") || strings.HasPrefix(w, "net/ipv6/conf/all/forwarding") {
			t.Errorf("ipForwarding Disabled, yet %s", w)
		}
	}
	if !slices.Contains(d.sysctl.Writes, "net/ipv4/conf/cali1/proxy_arp=1") {
		t.Errorf("workload interface not configured: %q", d.sysctl.Writes)
	}
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}})
	d.apply(t)
	if !slices.Contains(d.sysctl.Writes, "net/ipv4/ip_forward=1") {
		t.Errorf("ipForwarding Enabled again, but ip_forward not set: %q", d.sysctl.Writes)
	}
}

func TestNATOutgoingAddressGolden(t *testing.T) {
	d := newTestDP(t)
	d.OnConfigUpdate(hoststate.Config{NATOutgoingAddress: netip.MustParseAddr("192.0.2.1")})
	d.OnIPPoolUpdate("p1", hoststate.IPPool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), NATOutgoing: true})
	d.OnIPPoolUpdate("p2", hoststate.IPPool{CIDR: netip.MustParsePrefix("fd00:65::/48"), NATOutgoing: true})
	d.OnInSync()
	d.apply(t)
	var got []string
	for _, l := range strings.Split(d.nft.Dump(), "\n") {
		if strings.Contains(l, "natOutgoing") {
			got = append(got, strings.TrimSpace(l))
		}
	}
	golden(t, "nat_outgoing_address", strings.Join(got, "\n")+"\n")
}
