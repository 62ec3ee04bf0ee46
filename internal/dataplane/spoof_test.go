package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

func TestAntiSpoofAllowedPrefixesGolden(t *testing.T) {
	for _, c := range []struct {
		name  string
		allow bool
	}{{"spoof_allowed", true}, {"spoof_disabled", false}} {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDP(t)
			d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, AllowSourceSpoofing: c.allow})
			ep := wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil)
			// An IPv6 prefix lets IPv6 out of a workload without an
			// IPv6 address; overlapping prefixes merge.
			ep.AllowSpoofedSourcePrefixes = pfx("10.99.0.0/24", "10.99.0.128/25", "fd00:99::/64")
			d.OnWorkloadEndpointUpdate(ep)
			d.OnInSync()
			d.apply(t)
			var got []string
			for _, l := range strings.Split(d.nft.Dump(), "\n") {
				if strings.Contains(l, "anti-spoof") {
					got = append(got, strings.TrimSpace(l))
				}
			}
			golden(t, c.name, strings.Join(got, "\n")+"\n")
		})
	}
}

// TestAntiSpoofAllowedPrefixesPackets: w1 sends to w2 from addresses that
// are not its own. With workloadSourceSpoofing Any, a source inside its
// allowSpoofedSourcePrefixes passes and one outside is dropped; with
// spoofing disabled, both are dropped.
func TestAntiSpoofAllowedPrefixesPackets(t *testing.T) {
	tp := newTopo(t)
	d := tp.d
	// The spoofed sources are w1's own (on its loopback) so that replies
	// come back to it, and the host routes them to w1: only the
	// anti-spoofing rules decide.
	inNS(t, tp.w1Name, "sh", "-c", "ip addr add 10.99.0.5/32 dev lo && ip addr add 10.98.0.5/32 dev lo")
	inNS(t, tp.hostName, "sh", "-c", "ip route add 10.99.0.0/24 dev cali1 && ip route add 10.98.0.0/24 dev cali1")
	tp.w2Policy(t, nil, "allow-all")
	setW1 := func(allow bool) {
		d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, AllowSourceSpoofing: allow})
		ep := wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil, "allow-all")
		ep.AllowSpoofedSourcePrefixes = pfx("10.99.0.0/24")
		d.OnWorkloadEndpointUpdate(ep)
		if err := d.Apply(context.Background()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	for _, c := range []struct {
		allowSpoof bool
		from       string
		pass       bool
	}{
		{true, "10.99.0.5", true},
		{true, "10.98.0.5", false},
		{true, "10.65.0.1", true},
		{false, "10.99.0.5", false},
		{false, "10.65.0.1", true},
	} {
		setW1(c.allowSpoof)
		err := dial(tp.w1, c.from, "10.65.0.2:80")
		if c.pass && err != nil {
			t.Errorf("spoofing allowed=%v: w1 from %s → w2: want through, got %v", c.allowSpoof, c.from, err)
		}
		if !c.pass && err == nil {
			t.Errorf("spoofing allowed=%v: w1 from %s → w2: want dropped, got through", c.allowSpoof, c.from)
		}
	}
}

// TestAntiSpoofAllowedPrefixesPacketsIPv6: the same for IPv6.
func TestAntiSpoofAllowedPrefixesPacketsIPv6(t *testing.T) {
	d := newKernelDP(t, "spoof6")
	w1Name, w1 := newNetns(t, "sp6w1")
	w2Name, w2 := newNetns(t, "sp6w2")
	for _, ns := range []string{d.ns, w1Name, w2Name} {
		inNS(t, ns, "sh", "-c", "sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 && ip link set lo up")
	}
	inNS(t, d.ns, "sh", "-c", "ip link add cali1 address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns "+w1Name+
		" && ip link add cali2 address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns "+w2Name+" && ip link set cali1 up && ip link set cali2 up")
	inNS(t, w1Name, "sh", "-c", "ip link set eth0 address 02:00:00:00:00:01 && ip link set eth0 up && ip -6 addr add fd00:65::1/128 dev eth0 nodad"+
		" && ip -6 addr add fd00:99::5/128 dev lo && ip -6 addr add fd00:98::5/128 dev lo"+
		" && ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0")
	inNS(t, w2Name, "sh", "-c", "ip link set eth0 up && ip -6 addr add fd00:65::2/128 dev eth0 nodad"+
		" && ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0")
	// w1's link-local, from its MAC: the host routes the spoofed
	// prefixes to it.
	inNS(t, d.ns, "sh", "-c", "ip -6 route add fd00:99::/64 via fe80::ff:fe00:1 dev cali1 && ip -6 route add fd00:98::/64 via fe80::ff:fe00:1 dev cali1")
	listen(t, w2, "[fd00:65::2]:80")
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("fd00:65::2/128"), nil, "allow-all"))
	d.OnInSync()
	for _, c := range []struct {
		allowSpoof bool
		from       string
		pass       bool
	}{
		{true, "fd00:99::5", true},
		{true, "fd00:98::5", false},
		{true, "fd00:65::1", true},
		{false, "fd00:99::5", false},
	} {
		d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, AllowSourceSpoofing: c.allowSpoof})
		ep := wep("ns/w1", "cali1", pfx("fd00:65::1/128"), nil, "allow-all")
		ep.AllowSpoofedSourcePrefixes = pfx("fd00:99::/64")
		d.OnWorkloadEndpointUpdate(ep)
		if err := d.Apply(context.Background()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		err := dial(w1, c.from, "[fd00:65::2]:80")
		if c.pass && err != nil {
			t.Errorf("spoofing allowed=%v: w1 from %s → w2: want through, got %v", c.allowSpoof, c.from, err)
		}
		if !c.pass && err == nil {
			t.Errorf("spoofing allowed=%v: w1 from %s → w2: want dropped, got through", c.allowSpoof, c.from)
		}
	}
}
