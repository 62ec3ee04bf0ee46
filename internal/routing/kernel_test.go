package routing

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func mustNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// Routes other programs own, present in every case.
func seedForeign(nl *FakeNetlink) {
	// A local workload: proto 80 (the CNI plugin's), link scope, no gateway.
	nl.Add(netlink.Route{Dst: mustNet("10.65.1.5/32"), LinkIndex: 7, Scope: netlink.SCOPE_LINK, Protocol: 80, Type: unix.RTN_UNICAST})
	// This host's block: a blackhole, proto 80 (the dataplane's).
	nl.Add(netlink.Route{Dst: mustNet("10.65.1.0/26"), Protocol: 80, Type: unix.RTN_BLACKHOLE})
	// A static route an operator added.
	nl.Add(netlink.Route{Dst: mustNet("10.65.9.0/26"), Gw: net.ParseIP("192.168.1.1"), LinkIndex: 2, Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST})
}

const foreignDump = "10.65.1.0/26 blackhole proto 80\n10.65.1.5/32 dev#7 scope link proto 80\n10.65.9.0/26 via 192.168.1.1 dev#2 proto 4"

func TestKernelApply(t *testing.T) {
	nh := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	pfx := netip.MustParsePrefix
	tests := []struct {
		name        string
		before      []netlink.Route
		want        map[netip.Prefix][]netip.Addr
		via         map[string]string
		unreachable []string
		noDelete    bool
		taught      []string // prefixes taught during the startup hold
		dump        string
		shadowed    string
		unresolved  string
	}{
		{name: "nothing learned: only the foreign routes", dump: foreignDump},
		{name: "one learned route",
			want: map[netip.Prefix][]netip.Addr{pfx("10.65.2.0/26"): nh("172.30.0.12")},
			dump: foreignDump + "\n10.65.2.0/26 via 172.30.0.12 dev#1 proto 80"},
		{name: "ECMP: one route, several next hops",
			want: map[netip.Prefix][]netip.Addr{pfx("10.65.2.0/26"): nh("172.30.0.12", "172.30.0.13")},
			dump: foreignDump + "\n10.65.2.0/26 proto 80 nexthop via 172.30.0.12 dev#1 nexthop via 172.30.0.13 dev#1"},
		{name: "IPv6",
			want: map[netip.Prefix][]netip.Addr{pfx("fd00:65::/122"): nh("fd00::12")},
			dump: foreignDump + "\nfd00:65::/122 via fd00::12 dev#1 proto 80"},
		{name: "a learned /32 never replaces a local workload route",
			want:     map[netip.Prefix][]netip.Addr{pfx("10.65.1.5/32"): nh("172.30.0.12")},
			dump:     foreignDump,
			shadowed: "10.65.1.5/32"},
		{name: "a learned route never replaces another protocol's route",
			want:     map[netip.Prefix][]netip.Addr{pfx("10.65.9.0/26"): nh("172.30.0.12")},
			dump:     foreignDump,
			shadowed: "10.65.9.0/26"},
		{name: "a borrowed /32 inside our own block is programmed (more specific than the blackhole)",
			want: map[netip.Prefix][]netip.Addr{pfx("10.65.1.9/32"): nh("172.30.0.12")},
			dump: foreignDump + "\n10.65.1.9/32 via 172.30.0.12 dev#1 proto 80"},
		{name: "withdrawn: our stale route is deleted",
			before: []netlink.Route{{Dst: mustNet("10.65.3.0/26"), Gw: net.ParseIP("172.30.0.13"), LinkIndex: 1, Protocol: 80, Type: unix.RTN_UNICAST}},
			dump:   foreignDump},
		{name: "startup hold: stale routes stay",
			before:   []netlink.Route{{Dst: mustNet("10.65.3.0/26"), Gw: net.ParseIP("172.30.0.13"), LinkIndex: 1, Protocol: 80, Type: unix.RTN_UNICAST}},
			noDelete: true,
			dump:     foreignDump + "\n10.65.3.0/26 via 172.30.0.13 dev#1 proto 80"},
		{name: "startup hold: a route taught in this life and then withdrawn goes",
			before:   []netlink.Route{{Dst: mustNet("10.65.3.0/26"), Gw: net.ParseIP("172.30.0.13"), LinkIndex: 1, Protocol: 80, Type: unix.RTN_UNICAST}, {Dst: mustNet("10.65.5.0/26"), Gw: net.ParseIP("172.30.0.13"), LinkIndex: 1, Protocol: 80, Type: unix.RTN_UNICAST}},
			noDelete: true,
			taught:   []string{"10.65.3.0/26"},
			dump:     foreignDump + "\n10.65.5.0/26 via 172.30.0.13 dev#1 proto 80"},
		{name: "changed next hop is replaced in place",
			before: []netlink.Route{{Dst: mustNet("10.65.3.0/26"), Gw: net.ParseIP("172.30.0.13"), LinkIndex: 1, Protocol: 80, Type: unix.RTN_UNICAST}},
			want:   map[netip.Prefix][]netip.Addr{pfx("10.65.3.0/26"): nh("172.30.0.14")},
			dump:   foreignDump + "\n10.65.3.0/26 via 172.30.0.14 dev#1 proto 80"},
		{name: "next hop behind a router resolves recursively",
			want: map[netip.Prefix][]netip.Addr{pfx("10.65.2.0/26"): nh("172.31.0.12")},
			via:  map[string]string{"172.31.0.12": "172.30.0.1"},
			dump: foreignDump + "\n10.65.2.0/26 via 172.30.0.1 dev#1 proto 80"},
		{name: "unreachable next hops: route left out",
			want:        map[netip.Prefix][]netip.Addr{pfx("10.65.2.0/26"): nh("172.31.0.12"), pfx("10.65.4.0/26"): nh("172.31.0.12", "172.30.0.2")},
			unreachable: []string{"172.31.0.12"},
			dump:        foreignDump + "\n10.65.4.0/26 via 172.30.0.2 dev#1 proto 80",
			unresolved:  "10.65.2.0/26"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nl := NewFakeNetlink()
			seedForeign(nl)
			for _, r := range tc.before {
				nl.Add(r)
			}
			for a, gw := range tc.via {
				nl.Via[netip.MustParseAddr(a)] = netip.MustParseAddr(gw)
			}
			for _, a := range tc.unreachable {
				nl.Unreachable[netip.MustParseAddr(a)] = true
			}
			k := &kernel{nl: nl, proto: 80, log: testLogger(t)}
			taught := map[netip.Prefix]bool{}
			for _, p := range tc.taught {
				taught[pfx(p)] = true
			}
			res, err := k.apply(tc.want, !tc.noDelete, taught)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			wantLines := strings.Split(tc.dump, "\n")
			slices.Sort(wantLines)
			if got, want := nl.Dump(), strings.Join(wantLines, "\n"); got != want {
				t.Errorf("kernel\n%s\nwant\n%s", got, want)
			}
			if got := prefixList(res.Shadowed); got != tc.shadowed {
				t.Errorf("shadowed %q, want %q", got, tc.shadowed)
			}
			if got := prefixList(res.Unresolved); got != tc.unresolved {
				t.Errorf("unresolved %q, want %q", got, tc.unresolved)
			}
			// A second apply of the same state writes nothing.
			writes := nl.Writes
			if _, err := k.apply(tc.want, !tc.noDelete, taught); err != nil {
				t.Fatalf("second apply: %v", err)
			}
			if nl.Writes != writes {
				t.Errorf("second apply wrote %d times", nl.Writes-writes)
			}
		})
	}
}

func prefixList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestKernelApplyErrors(t *testing.T) {
	nl := NewFakeNetlink()
	nl.Fail["RouteReplace"] = unix.EINVAL
	nl.Fail["RouteAdd"] = unix.EINVAL // a new route is added, a known one replaced
	k := &kernel{nl: nl, proto: 80, log: testLogger(t)}
	_, err := k.apply(map[netip.Prefix][]netip.Addr{netip.MustParsePrefix("10.65.2.0/26"): {netip.MustParseAddr("172.30.0.12")}}, true, nil)
	if err == nil || !strings.Contains(err.Error(), "programming route 10.65.2.0/26 via 172.30.0.12 dev#1: invalid argument") {
		t.Errorf("error %v", err)
	}
	nl.Fail["RouteListFiltered"] = unix.EBUSY
	if _, err := k.apply(nil, true, nil); err == nil || !strings.Contains(err.Error(), "listing routes") {
		t.Errorf("error %v", err)
	}
}
