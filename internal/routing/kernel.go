package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the part of a netlink handle the speaker uses.
// *netlink.Handle implements it; FakeNetlink is the in-memory double.
type Netlink interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteAdd(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	RouteGet(destination net.IP) ([]netlink.Route, error)
}

// nexthop is one resolved next hop of a kernel route.
type nexthop struct {
	gw   netip.Addr
	link int
}

func compareNexthop(a, b nexthop) int {
	if c := a.gw.Compare(b.gw); c != 0 {
		return c
	}
	return a.link - b.link
}

// kernel programs the routes the speaker learned. It owns exactly the
// routes of the main table that carry its protocol number AND are unicast
// routes through a gateway: the CNI plugin and the dataplane use the same
// protocol number for workload routes (link scope, no gateway) and block
// blackholes, and those are never touched. Any route for the same
// destination that is not ours (another protocol, or one of those) makes
// the learned route stand aside: a learned route never replaces a local
// one.
//
// Between full applies (which read the whole table), applySome changes
// single destinations from what the last full apply read and what was
// written since (known), without reading the table: a new route is added
// exclusively, so that one of another program that appeared since is
// never replaced (the kernel refuses, and the learned route stands aside).
type kernel struct {
	nl    Netlink
	proto netlink.RouteProtocol
	log   *slog.Logger
	// known is the kernel's main table as far as the speaker knows it:
	// per destination, the route of ours and whether another exists.
	known map[netip.Prefix]*dstState
}

// dstState is what the kernel holds for one destination.
type dstState struct {
	ours    *netlink.Route
	nhs     []nexthop
	dups    []*netlink.Route // more of ours (other metrics), to remove
	foreign bool
}

// KernelResult says what an apply did, for logs, status and tests.
type KernelResult struct {
	Replaced, Deleted int
	// Shadowed are learned prefixes left out because a route that is not
	// ours exists for the same destination.
	Shadowed []netip.Prefix
	// Unresolved are learned prefixes none of whose next hops is reachable.
	Unresolved []netip.Prefix
	// Overlapping are learned prefixes not programmed because they lie
	// inside this host's blocks, workloads or subnets (Desired.Protected).
	Overlapping []netip.Prefix
}

func (k *kernel) owns(r *netlink.Route) bool {
	return r.Protocol == k.proto && r.Type == unix.RTN_UNICAST && (r.Gw != nil || len(r.MultiPath) > 0)
}

func routeDst(r *netlink.Route, family int) netip.Prefix {
	if r.Dst == nil {
		if family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	a, _ := netip.AddrFromSlice(r.Dst.IP)
	ones, _ := r.Dst.Mask.Size()
	if family == netlink.FAMILY_V4 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones)
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func routeNexthops(r *netlink.Route) []nexthop {
	var out []nexthop
	if r.Gw != nil {
		a, _ := netip.AddrFromSlice(r.Gw)
		out = append(out, nexthop{a.Unmap(), r.LinkIndex})
	}
	for _, m := range r.MultiPath {
		if m.Gw == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(m.Gw)
		out = append(out, nexthop{a.Unmap(), m.LinkIndex})
	}
	slices.SortFunc(out, compareNexthop)
	return out
}

// resolve finds how the kernel reaches a BGP next hop: directly (the next
// hop itself on the interface of the connected route) or through a
// gateway, as BIRD's "gateway recursive" does. It lets a route learned
// from a peer several hops away (a route reflector's client behind a
// router) be programmed with a next hop the kernel accepts.
func (k *kernel) resolve(nh netip.Addr, cache map[netip.Addr]*nexthop) *nexthop {
	if r, ok := cache[nh]; ok {
		return r
	}
	var res *nexthop
	routes, err := k.nl.RouteGet(ipOf(nh))
	if err == nil && len(routes) > 0 {
		r := routes[0]
		switch {
		case r.Type != 0 && r.Type != unix.RTN_UNICAST && r.Type != unix.RTN_LOCAL:
			// unreachable, blackhole, prohibit: no way there
		case r.Gw != nil:
			a, _ := netip.AddrFromSlice(r.Gw)
			res = &nexthop{a.Unmap(), r.LinkIndex}
		default:
			res = &nexthop{nh, r.LinkIndex}
		}
	}
	cache[nh] = res
	return res
}

// apply makes the kernel's routes of ours match want (prefix → BGP next
// hops), reading the whole main table first. Routes of ours that are not
// wanted are deleted only when allowDelete is set or taught holds their
// prefix: during the startup hold allowDelete is off, so that a restarting
// speaker does not remove routes (left by its previous life) that its
// peers are about to send again, but a route this life was taught and then
// lost is still withdrawn. Every difference is attempted; the errors are
// joined.
func (k *kernel) apply(want map[netip.Prefix][]netip.Addr, allowDelete bool, taught map[netip.Prefix]bool) (KernelResult, error) {
	var res KernelResult
	known := map[netip.Prefix]*dstState{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := k.nl.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return res, fmt.Errorf("listing routes (family %d): %w", fam, err)
		}
		for i := range routes {
			r := &routes[i]
			dst := routeDst(r, fam)
			st := known[dst]
			if st == nil {
				st = &dstState{}
				known[dst] = st
			}
			switch {
			case !k.owns(r):
				st.foreign = true
			case st.ours != nil:
				// Two of ours for one destination (different metrics):
				// keep the first, remove the other.
				st.dups = append(st.dups, r)
			default:
				st.ours, st.nhs = r, routeNexthops(r)
			}
		}
	}
	k.known = known
	prefixes := make([]netip.Prefix, 0, len(want))
	for p := range want {
		prefixes = append(prefixes, p)
	}
	for p, st := range known {
		if _, ok := want[p]; !ok && (st.ours != nil || len(st.dups) > 0) {
			prefixes = append(prefixes, p)
		}
	}
	return k.applyPrefixes(prefixes, want, allowDelete, taught, &res)
}

// applySome is apply for the destinations in prefixes only, from the
// known table (see kernel). It needs a full apply first.
func (k *kernel) applySome(prefixes []netip.Prefix, want map[netip.Prefix][]netip.Addr, allowDelete bool, taught map[netip.Prefix]bool) (KernelResult, error) {
	var res KernelResult
	if k.known == nil {
		return res, fmt.Errorf("no full read of the kernel routes yet")
	}
	return k.applyPrefixes(prefixes, want, allowDelete, taught, &res)
}

func (k *kernel) applyPrefixes(prefixes []netip.Prefix, want map[netip.Prefix][]netip.Addr, allowDelete bool, taught map[netip.Prefix]bool, res *KernelResult) (KernelResult, error) {
	slices.SortFunc(prefixes, comparePrefix)
	prefixes = slices.Compact(prefixes)
	cache := map[netip.Addr]*nexthop{}
	var errs []error
	for _, p := range prefixes {
		gws, wanted := want[p]
		errs = append(errs, k.one(p, gws, wanted, allowDelete || taught[p], cache, res)...)
	}
	return *res, errors.Join(errs...)
}

// one makes the kernel's route of ours for p match gws (no route when
// !wanted, or when mayDelete is false, leave an unwanted one alone).
func (k *kernel) one(p netip.Prefix, gws []netip.Addr, wanted, mayDelete bool, cache map[netip.Addr]*nexthop, res *KernelResult) []error {
	st := k.known[p]
	if st == nil {
		st = &dstState{}
		k.known[p] = st
	}
	defer func() {
		if st.ours == nil && len(st.dups) == 0 && !st.foreign {
			delete(k.known, p)
		}
	}()
	var errs []error
	if mayDelete {
		for _, d := range st.dups {
			if err := k.nl.RouteDel(d); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("deleting duplicate route %s: %w", p, err))
			}
		}
		st.dups = nil
	}
	keep := false
	if wanted {
		var nhs []nexthop
		for _, gw := range gws {
			if r := k.resolve(gw, cache); r != nil {
				nhs = append(nhs, *r)
			}
		}
		slices.SortFunc(nhs, compareNexthop)
		nhs = slices.Compact(nhs)
		switch {
		case st.foreign:
			res.Shadowed = append(res.Shadowed, p)
		case len(nhs) == 0:
			res.Unresolved = append(res.Unresolved, p)
		case st.ours != nil && slices.Equal(st.nhs, nhs):
			keep = true
		default:
			keep = true
			r := k.build(p, nhs)
			write := k.nl.RouteReplace
			if st.ours == nil {
				write = k.nl.RouteAdd
			}
			err := write(r)
			switch {
			case errors.Is(err, unix.EEXIST):
				// Another program's route appeared since the last read.
				st.foreign, keep = true, false
				res.Shadowed = append(res.Shadowed, p)
			case err != nil:
				errs = append(errs, fmt.Errorf("programming route %s via %s: %w", p, nexthopsString(nhs), err))
			default:
				st.ours, st.nhs = r, nhs
				res.Replaced++
			}
		}
	}
	if !keep && st.ours != nil && mayDelete {
		if err := k.nl.RouteDel(st.ours); err != nil && !errors.Is(err, unix.ESRCH) {
			return append(errs, fmt.Errorf("deleting route %s: %w", p, err))
		}
		st.ours, st.nhs = nil, nil
		res.Deleted++
	}
	return errs
}

func (k *kernel) build(p netip.Prefix, nhs []nexthop) *netlink.Route {
	r := &netlink.Route{
		Dst:      &net.IPNet{IP: ipOf(p.Addr()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Protocol: k.proto,
		Table:    unix.RT_TABLE_MAIN,
		Type:     unix.RTN_UNICAST,
		Scope:    netlink.SCOPE_UNIVERSE,
	}
	if p.Addr().Is4() {
		r.Family = netlink.FAMILY_V4
	} else {
		r.Family = netlink.FAMILY_V6
	}
	if len(nhs) == 1 {
		r.Gw, r.LinkIndex = ipOf(nhs[0].gw), nhs[0].link
		return r
	}
	for _, nh := range nhs {
		r.MultiPath = append(r.MultiPath, &netlink.NexthopInfo{LinkIndex: nh.link, Gw: ipOf(nh.gw)})
	}
	return r
}

func nexthopsString(nhs []nexthop) string {
	s := make([]string, len(nhs))
	for i, nh := range nhs {
		s[i] = fmt.Sprintf("%s dev#%d", nh.gw, nh.link)
	}
	return strings.Join(s, ", ")
}
