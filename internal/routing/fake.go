package routing

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FakeNetlink is an in-memory Netlink for tests: a main table of routes
// keyed by destination and metric, like the kernel's. RouteGet answers that
// every address is directly reachable on link 1, unless Unreachable or
// Via say otherwise. It is safe for concurrent use.
type FakeNetlink struct {
	mu     sync.Mutex
	routes map[string]netlink.Route
	// Unreachable next hops make RouteGet fail.
	Unreachable map[netip.Addr]bool
	// Via maps an address to the gateway RouteGet reports for it.
	Via map[netip.Addr]netip.Addr
	// Fail makes the next calls of the named method ("RouteReplace", ...)
	// fail with it.
	Fail map[string]error
	// Calls counts writes, to check that an apply wrote nothing.
	Writes int
	// Lists counts RouteListFiltered calls (full reads of the table).
	Lists int
	// WriteGate, when set, holds every write until it is closed (a kernel
	// that does not answer); Held counts the writes waiting on it.
	WriteGate chan struct{}
	Held      int
}

// hold waits on WriteGate, if one is set; it is called without f.mu.
func (f *FakeNetlink) hold() {
	f.mu.Lock()
	gate := f.WriteGate
	if gate != nil {
		f.Held++
	}
	f.mu.Unlock()
	if gate == nil {
		return
	}
	<-gate
	f.mu.Lock()
	f.Held--
	f.mu.Unlock()
}

// NewFakeNetlink returns an empty table.
func NewFakeNetlink() *FakeNetlink {
	return &FakeNetlink{routes: map[string]netlink.Route{}, Unreachable: map[netip.Addr]bool{}, Via: map[netip.Addr]netip.Addr{}, Fail: map[string]error{}}
}

func fakeKey(r *netlink.Route) string {
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	return fmt.Sprintf("%s/%d", dst, r.Priority)
}

// Add inserts a route as another program would (no checks).
func (f *FakeNetlink) Add(r netlink.Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Table == 0 {
		r.Table = unix.RT_TABLE_MAIN
	}
	f.routes[fakeKey(&r)] = r
}

// RouteListFiltered implements Netlink; it honours the table filter only.
func (f *FakeNetlink) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["RouteListFiltered"]; err != nil {
		return nil, err
	}
	f.Lists++
	var out []netlink.Route
	for _, r := range f.routes {
		v4 := r.Dst == nil && r.Family != netlink.FAMILY_V6 || r.Dst != nil && r.Dst.IP.To4() != nil
		if (family == netlink.FAMILY_V4) != v4 {
			continue
		}
		if mask&netlink.RT_FILTER_TABLE != 0 && filter != nil && r.Table != filter.Table {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b netlink.Route) int { return strings.Compare(fakeKey(&a), fakeKey(&b)) })
	return out, nil
}

// RouteReplace implements Netlink.
func (f *FakeNetlink) RouteReplace(r *netlink.Route) error {
	f.hold()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["RouteReplace"]; err != nil {
		return err
	}
	f.Writes++
	c := *r
	if c.Table == 0 {
		c.Table = unix.RT_TABLE_MAIN
	}
	f.routes[fakeKey(&c)] = c
	return nil
}

// RouteAdd implements Netlink: like the kernel's, it fails with EEXIST
// when a route for the same destination and metric exists.
func (f *FakeNetlink) RouteAdd(r *netlink.Route) error {
	f.hold()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["RouteAdd"]; err != nil {
		return err
	}
	c := *r
	if c.Table == 0 {
		c.Table = unix.RT_TABLE_MAIN
	}
	if _, ok := f.routes[fakeKey(&c)]; ok {
		return unix.EEXIST
	}
	f.Writes++
	f.routes[fakeKey(&c)] = c
	return nil
}

// RouteDel implements Netlink.
func (f *FakeNetlink) RouteDel(r *netlink.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["RouteDel"]; err != nil {
		return err
	}
	f.Writes++
	k := fakeKey(r)
	if _, ok := f.routes[k]; !ok {
		return unix.ESRCH
	}
	delete(f.routes, k)
	return nil
}

// RouteGet implements Netlink.
func (f *FakeNetlink) RouteGet(dst net.IP) ([]netlink.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, _ := netip.AddrFromSlice(dst)
	a = a.Unmap()
	if f.Unreachable[a] {
		return nil, unix.ENETUNREACH
	}
	r := netlink.Route{LinkIndex: 1, Type: unix.RTN_UNICAST}
	if gw, ok := f.Via[a]; ok {
		r.Gw = ipOf(gw)
	}
	return []netlink.Route{r}, nil
}

// Dump renders the table one route a line, sorted, in a form close to
// `ip route`: "10.65.1.0/26 via 127.0.0.2 dev#1 proto 80",
// "10.65.2.0/26 proto 80 nexthop via A dev#1 nexthop via B dev#1".
func (f *FakeNetlink) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for _, r := range f.routes {
		var b strings.Builder
		if r.Dst == nil {
			b.WriteString("default")
		} else {
			b.WriteString(r.Dst.String())
		}
		switch r.Type {
		case unix.RTN_BLACKHOLE:
			b.WriteString(" blackhole")
		}
		if r.Gw != nil {
			fmt.Fprintf(&b, " via %s", r.Gw)
		}
		if r.LinkIndex != 0 {
			fmt.Fprintf(&b, " dev#%d", r.LinkIndex)
		}
		if r.Scope == netlink.SCOPE_LINK {
			b.WriteString(" scope link")
		}
		fmt.Fprintf(&b, " proto %d", int(r.Protocol))
		nhs := slices.Clone(r.MultiPath)
		slices.SortFunc(nhs, func(x, y *netlink.NexthopInfo) int { return strings.Compare(x.Gw.String(), y.Gw.String()) })
		for _, nh := range nhs {
			fmt.Fprintf(&b, " nexthop via %s dev#%d", nh.Gw, nh.LinkIndex)
		}
		lines = append(lines, b.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// Len is the number of routes in the table.
func (f *FakeNetlink) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.routes)
}
