package routing

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/servalnet/serval/internal/roottest"
)

// newTestNetns creates a throwaway network namespace ("svt-bgp-..."), with
// a veth interface holding 172.30.0.1/24 and fd30::1/64, and returns a
// netlink handle inside it. Nothing touches the host's own routes.
func newTestNetns(t *testing.T) (*netlink.Handle, int) {
	t.Helper()
	roottest.NeedRoot(t, "creates a network namespace")
	name := fmt.Sprintf("svt-bgp-%d-%04x", os.Getpid(), rand.IntN(1<<16))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening netns %s: %v", name, err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	// A veth pair (both ends inside the namespace) rather than a dummy
	// device: some kernels have no dummy driver.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "svt0"}, PeerName: "svt1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("adding veth pair: %v", err)
	}
	if peer, err := h.LinkByName("svt1"); err == nil {
		h.LinkSetUp(peer)
	}
	link, err := h.LinkByName("svt0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"172.30.0.1/24", "fd30::1/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(link, addr); err != nil {
			t.Fatalf("adding %s: %v", a, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	return h, link.Attrs().Index
}

// dumpOurs renders the routes of the main table the way `ip route` would,
// only those whose destination is in 10.65.0.0/16 or fd00:65::/48 or the
// ones a test added.
func dumpRoutes(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	var lines []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst == nil || !(strings.HasPrefix(r.Dst.String(), "10.6") || strings.HasPrefix(r.Dst.String(), "fd00:65")) {
				continue
			}
			s := r.Dst.String()
			if r.Type == unix.RTN_BLACKHOLE {
				s += " blackhole"
			}
			if r.Gw != nil {
				s += " via " + r.Gw.String()
			}
			var nhs []string
			for _, nh := range r.MultiPath {
				nhs = append(nhs, " nexthop via "+nh.Gw.String())
			}
			slices.Sort(nhs)
			s += fmt.Sprintf(" proto %d", int(r.Protocol)) + strings.Join(nhs, "")
			lines = append(lines, s)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestKernelRootNetns(t *testing.T) {
	h, link := newTestNetns(t)
	// Routes that are not the speaker's: a static route and, with our own
	// protocol number, a workload route and a block blackhole.
	for _, r := range []netlink.Route{
		{Dst: mustNet("10.65.9.0/26"), Gw: net.ParseIP("172.30.0.254"), LinkIndex: link, Protocol: unix.RTPROT_STATIC},
		{Dst: mustNet("10.65.1.5/32"), LinkIndex: link, Scope: netlink.SCOPE_LINK, Protocol: 80},
		{Dst: mustNet("10.65.1.0/26"), Type: unix.RTN_BLACKHOLE, Protocol: 80},
	} {
		if err := h.RouteAdd(&r); err != nil {
			t.Fatalf("seeding %s: %v", r.Dst, err)
		}
	}
	foreign := "10.65.1.0/26 blackhole proto 80\n10.65.1.5/32 proto 80\n10.65.9.0/26 via 172.30.0.254 proto 4"
	k := &kernel{nl: h, proto: 80, log: testLogger(t)}
	a := netip.MustParseAddr
	p := netip.MustParsePrefix

	steps := []struct {
		name string
		want map[netip.Prefix][]netip.Addr
		dump string
	}{
		{"learned routes, one ECMP, one IPv6; the shadowed two left alone", map[netip.Prefix][]netip.Addr{
			p("10.65.2.0/26"):  {a("172.30.0.12")},
			p("10.65.3.0/26"):  {a("172.30.0.12"), a("172.30.0.13")},
			p("fd00:65::/122"): {a("fd30::12")},
			p("10.65.1.5/32"):  {a("172.30.0.13")},
			p("10.65.9.0/26"):  {a("172.30.0.13")},
		}, "10.65.2.0/26 via 172.30.0.12 proto 80\n10.65.3.0/26 proto 80 nexthop via 172.30.0.12 nexthop via 172.30.0.13\n" + foreign + "\nfd00:65::/122 via fd30::12 proto 80"},
		{"one ECMP path withdrawn, one route moved", map[netip.Prefix][]netip.Addr{
			p("10.65.2.0/26"):  {a("172.30.0.14")},
			p("10.65.3.0/26"):  {a("172.30.0.13")},
			p("fd00:65::/122"): {a("fd30::12")},
		}, "10.65.2.0/26 via 172.30.0.14 proto 80\n10.65.3.0/26 via 172.30.0.13 proto 80\n" + foreign + "\nfd00:65::/122 via fd30::12 proto 80"},
		{"everything withdrawn (session lost)", nil, foreign},
	}
	for _, st := range steps {
		if _, err := k.apply(st.want, true, nil); err != nil {
			t.Fatalf("%s: apply: %v", st.name, err)
		}
		want := strings.Split(st.dump, "\n")
		slices.Sort(want)
		if got := dumpRoutes(t, h); got != strings.Join(want, "\n") {
			t.Errorf("%s: kernel\n%s\nwant\n%s", st.name, got, strings.Join(want, "\n"))
		}
	}
}

// TestKernelRootApplySome: between full reads, single destinations are
// added and removed from the known table, and a route another program
// added since the last read is not replaced (the exclusive add fails and
// the learned route stands aside).
func TestKernelRootApplySome(t *testing.T) {
	h, link := newTestNetns(t)
	k := &kernel{nl: h, proto: 80, log: testLogger(t)}
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	if _, err := k.apply(map[netip.Prefix][]netip.Addr{p("10.65.2.0/26"): {a("172.30.0.12")}}, true, nil); err != nil {
		t.Fatal(err)
	}
	// Behind the speaker's back, after its read.
	static := netlink.Route{Dst: mustNet("10.65.4.0/26"), Gw: net.ParseIP("172.30.0.254"), LinkIndex: link, Protocol: unix.RTPROT_STATIC}
	if err := h.RouteAdd(&static); err != nil {
		t.Fatal(err)
	}
	res, err := k.applySome([]netip.Prefix{p("10.65.4.0/26"), p("10.65.5.0/26")}, map[netip.Prefix][]netip.Addr{
		p("10.65.4.0/26"): {a("172.30.0.13")},
		p("10.65.5.0/26"): {a("172.30.0.13")},
	}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Shadowed) != "[10.65.4.0/26]" || res.Replaced != 1 {
		t.Errorf("result %+v, want 10.65.4.0/26 shadowed and one route written", res)
	}
	want := "10.65.2.0/26 via 172.30.0.12 proto 80\n10.65.4.0/26 via 172.30.0.254 proto 4\n10.65.5.0/26 via 172.30.0.13 proto 80"
	if got := dumpRoutes(t, h); got != want {
		t.Errorf("kernel\n%s\nwant\n%s", got, want)
	}
	// 10.65.5.0/26 withdrawn, 10.65.2.0/26 untouched (not in the set).
	if _, err := k.applySome([]netip.Prefix{p("10.65.5.0/26")}, nil, true, nil); err != nil {
		t.Fatal(err)
	}
	want = "10.65.2.0/26 via 172.30.0.12 proto 80\n10.65.4.0/26 via 172.30.0.254 proto 4"
	if got := dumpRoutes(t, h); got != want {
		t.Errorf("after the withdrawal: kernel\n%s\nwant\n%s", got, want)
	}
}
