package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/netconst"
)

// RouteProtocol marks the routes Serval owns (shared with the CNI plugin).
const RouteProtocol = netconst.RouteProtocol

// RouteHandle is the part of a netlink handle the route manager uses;
// *netlink.Handle implements it (netlink.NewHandleAt for a namespace), and
// FakeRoutes is a strict fake.
type RouteHandle interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
}

// routeManager keeps a /32 (/128) route per local workload address via its
// interface, and a blackhole route per local IPAM block. Routes carrying
// another protocol number are never touched.
type routeManager struct {
	h   RouteHandle
	log *slog.Logger

	workloads map[string]workloadRoutes // endpoint key → its routes
	blocks    map[netip.Prefix]bool
	prefixes  []string
	// floating: floating IPs routed by this manager (since start), whose
	// routes it removes even on a workload's interface.
	floating map[netip.Prefix]bool
}

type workloadRoutes struct {
	iface string
	nets  []netip.Prefix
}

func newRouteManager(h RouteHandle, log *slog.Logger) *routeManager {
	return &routeManager{h: h, log: log, workloads: map[string]workloadRoutes{}, blocks: map[netip.Prefix]bool{}, floating: map[netip.Prefix]bool{}}
}

func (m *routeManager) setWorkload(key string, ep *hoststate.WorkloadEndpoint) {
	if ep == nil || ep.InterfaceName == "" {
		delete(m.workloads, key)
		return
	}
	nets := append(slices.Clone(ep.IPv4Nets), ep.IPv6Nets...)
	// A floating IP is routed to its workload too: the route is what
	// makes this host the place to send it (see floatingip.go).
	for _, n := range ep.IPNATs {
		if n.External.IsValid() {
			p := netip.PrefixFrom(n.External, n.External.BitLen())
			nets = append(nets, p)
			m.floating[p] = true
		}
	}
	m.workloads[key] = workloadRoutes{iface: ep.InterfaceName, nets: nets}
}

func (m *routeManager) setBlock(p netip.Prefix, on bool) {
	if on {
		m.blocks[p.Masked()] = true
	} else {
		delete(m.blocks, p.Masked())
	}
}

type wantRoute struct {
	iface     string // "" for a blackhole
	blackhole bool
}

// apply programs missing or wrong routes and, once in sync, removes stale
// ones. A workload whose interface does not exist yet is skipped: the CNI
// plugin creates the veth and the next Apply adds the route.
func (m *routeManager) apply(inSync bool) error {
	want := map[netip.Prefix]wantRoute{}
	for p := range m.blocks {
		want[p] = wantRoute{blackhole: true}
	}
	for _, w := range m.workloads {
		for _, n := range w.nets {
			if !n.IsValid() {
				continue
			}
			// A workload's address is always routed as a host route.
			want[netip.PrefixFrom(n.Addr(), n.Addr().BitLen())] = wantRoute{iface: w.iface}
		}
	}
	have, err := m.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("listing routes with protocol %d: %w", RouteProtocol, err)
	}
	links := map[string]int{}
	linkIndex := func(name string) (int, bool) {
		if i, ok := links[name]; ok {
			return i, i > 0
		}
		l, err := m.h.LinkByName(name)
		if err != nil || l == nil {
			links[name] = 0
			return 0, false
		}
		links[name] = l.Attrs().Index
		return l.Attrs().Index, true
	}
	seen := map[netip.Prefix]bool{}
	var errs []error
	for _, r := range have {
		p, ok := routeDst(r)
		if !ok || r.Protocol != RouteProtocol {
			continue
		}
		w, wanted := want[p]
		if wanted && !seen[p] {
			if w.blackhole && r.Type == unix.RTN_BLACKHOLE {
				seen[p] = true
				continue
			}
			if idx, ok := linkIndex(w.iface); !w.blackhole && ok && r.LinkIndex == idx && r.Type != unix.RTN_BLACKHOLE {
				seen[p] = true
				continue
			}
			continue // wrong: RouteReplace below fixes it
		}
		if !inSync || wanted {
			continue
		}
		// A route to an existing workload interface that we do not know
		// yet is the CNI plugin's, made before its endpoint reached us;
		// but a floating IP's route is ours alone.
		if r.LinkIndex > 0 && !m.floating[p] && m.isWorkloadLink(r.LinkIndex) {
			continue
		}
		// A route with a next hop is one the BGP speaker learned from a
		// peer: it shares our protocol number but is the speaker's to
		// withdraw, not ours.
		if r.Gw != nil || len(r.MultiPath) > 0 {
			continue
		}
		rr := r
		if err := m.h.RouteDel(&rr); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing stale route %s: %w", p, err))
		}
	}
	for _, p := range sortedPrefixes(want) {
		if seen[p] {
			continue
		}
		w := want[p]
		r := &netlink.Route{Dst: prefixIPNet(p), Protocol: RouteProtocol}
		if w.blackhole {
			r.Type = unix.RTN_BLACKHOLE
		} else {
			idx, ok := linkIndex(w.iface)
			if !ok {
				m.log.Debug("workload interface not there yet; route deferred", "iface", w.iface, "dst", p)
				continue
			}
			r.LinkIndex = idx
			r.Scope = netlink.SCOPE_LINK
		}
		if err := m.h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("programming route %s via %s: %w", p, orBlackhole(w.iface), err))
		}
	}
	return errors.Join(errs...)
}

func (m *routeManager) isWorkloadLink(idx int) bool {
	l, err := m.h.LinkByIndex(idx)
	if err != nil || l == nil {
		return false
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(l.Attrs().Name, p) {
			return true
		}
	}
	return false
}

func orBlackhole(s string) string {
	if s == "" {
		return "blackhole"
	}
	return s
}

func routeDst(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}

// FakeRoutes is a strict fake RouteHandle: it knows a set of links and a
// route table, fails on routes via unknown links and on deleting routes
// that are not there, and records every change.
type FakeRoutes struct {
	Links  map[string]int // name → index
	routes []netlink.Route
	Calls  []string
}

// NewFakeRoutes returns a fake with the given links (name → index).
func NewFakeRoutes(links map[string]int) *FakeRoutes {
	if links == nil {
		links = map[string]int{}
	}
	return &FakeRoutes{Links: links}
}

func (f *FakeRoutes) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	var out []netlink.Route
	for _, r := range f.routes {
		if mask&netlink.RT_FILTER_PROTOCOL != 0 && r.Protocol != filter.Protocol {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *FakeRoutes) RouteReplace(r *netlink.Route) error {
	if r.Type != unix.RTN_BLACKHOLE && f.linkName(r.LinkIndex) == "" {
		return fmt.Errorf("fake routes: no link with index %d", r.LinkIndex)
	}
	p, _ := routeDst(*r)
	f.Calls = append(f.Calls, "replace "+f.routeText(*r))
	f.routes = slices.DeleteFunc(f.routes, func(x netlink.Route) bool { q, _ := routeDst(x); return q == p })
	f.routes = append(f.routes, *r)
	return nil
}

func (f *FakeRoutes) RouteDel(r *netlink.Route) error {
	p, _ := routeDst(*r)
	n := len(f.routes)
	f.routes = slices.DeleteFunc(f.routes, func(x netlink.Route) bool { q, _ := routeDst(x); return q == p })
	if len(f.routes) == n {
		return fmt.Errorf("fake routes: delete %s: %w", p, unix.ESRCH)
	}
	f.Calls = append(f.Calls, "delete "+f.routeText(*r))
	return nil
}

func (f *FakeRoutes) LinkByName(name string) (netlink.Link, error) {
	i, ok := f.Links[name]
	if !ok {
		return nil, netlink.LinkNotFoundError{}
	}
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, Index: i}}, nil
}

func (f *FakeRoutes) LinkByIndex(idx int) (netlink.Link, error) {
	if n := f.linkName(idx); n != "" {
		return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: n, Index: idx}}, nil
	}
	return nil, netlink.LinkNotFoundError{}
}

// AddRoute puts a route into the table behind the manager's back.
func (f *FakeRoutes) AddRoute(r netlink.Route) { f.routes = append(f.routes, r) }

func (f *FakeRoutes) linkName(idx int) string {
	for n, i := range f.Links {
		if i == idx {
			return n
		}
	}
	return ""
}

func (f *FakeRoutes) routeText(r netlink.Route) string {
	p, _ := routeDst(r)
	if r.Type == unix.RTN_BLACKHOLE {
		return fmt.Sprintf("blackhole %s proto %d", p, r.Protocol)
	}
	if r.Gw != nil {
		return fmt.Sprintf("%s via %s dev %s proto %d", p, r.Gw, f.linkName(r.LinkIndex), r.Protocol)
	}
	return fmt.Sprintf("%s dev %s scope link proto %d", p, f.linkName(r.LinkIndex), r.Protocol)
}

// Dump prints the route table sorted, one route a line.
func (f *FakeRoutes) Dump() string {
	lines := make([]string, 0, len(f.routes))
	for _, r := range f.routes {
		lines = append(lines, f.routeText(r))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var _ RouteHandle = (*netlink.Handle)(nil)
