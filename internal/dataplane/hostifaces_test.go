package dataplane

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/servalnet/serval/internal/hoststate"
)

// fakeHost is a HostIfaces with settable interfaces and addresses.
type fakeHost struct {
	links []string
	addrs map[string][]string // interface → addresses
}

func (f *fakeHost) LinkList() ([]netlink.Link, error) {
	var out []netlink.Link
	for i, n := range f.links {
		out = append(out, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: n, Index: i + 1}})
	}
	return out, nil
}

func (f *fakeHost) AddrList(_ netlink.Link, _ int) ([]netlink.Addr, error) {
	var out []netlink.Addr
	for i, n := range f.links {
		for _, a := range f.addrs[n] {
			out = append(out, netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(a), Mask: net.CIDRMask(32, 32)}, LinkIndex: i + 1})
		}
	}
	return out, nil
}

func newHostTestDP(t *testing.T, h *fakeHost) *testDP {
	t.Helper()
	nft := NewFakeNFT()
	d, err := New(Options{NFT: nft, Ifaces: h})
	if err != nil {
		t.Fatal(err)
	}
	return &testDP{Dataplane: d, nft: nft}
}

func mapLine(dump, name string) string {
	lines := strings.Split(dump, "\n")
	for i, l := range lines {
		if strings.Contains(l, "map "+name+" ") {
			for _, m := range lines[i+1:] {
				if strings.Contains(m, "elements =") {
					return strings.TrimSpace(m)
				}
				if strings.TrimSpace(m) == "}" {
					return ""
				}
			}
		}
	}
	return ""
}

// TestHostEndpointByExpectedIPs: an endpoint with expectedIPs only applies
// to the interfaces carrying those addresses, follows them when they move
// (after an interface refresh), never takes a named endpoint's interface,
// and the "*" endpoint leaves its interfaces alone; interfaceExclude's
// names and expressions keep interfaces out of "*".
func TestHostEndpointByExpectedIPs(t *testing.T) {
	h := &fakeHost{links: []string{"lo", "eth0", "eth1", "eth2", "kube-ipvs0", "vxlan.calico"},
		addrs: map[string][]string{"eth0": {"10.0.0.1"}, "eth1": {"10.1.0.1", "10.0.0.9"}, "eth2": {"10.2.0.1"}}}
	d := newHostTestDP(t, h)
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, InterfaceExclude: []string{"kube-ipvs0", "/^vxlan/"}})
	d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "by-ip", ExpectedIPs: []netip.Addr{mustAddr("10.1.0.1"), mustAddr("10.0.0.1")}})
	d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "named", InterfaceName: "eth0"})
	d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "all", InterfaceName: "*"})
	d.OnInSync()
	d.apply(t)
	dump := d.nft.Dump()
	in := mapLine(dump, mapHepIn)
	byIP, named := hepChainName("by-ip", mapHepIn), hepChainName("named", mapHepIn)
	// eth0 is the named endpoint's although by-ip expects 10.0.0.1 too.
	if want := `elements = { "eth0" : jump ` + named + `, "eth1" : jump ` + byIP + ` }`; in != want {
		t.Errorf("hep-in:\n%s\nwant\n%s", in, want)
	}
	if !strings.Contains(dump, `iifname != { "eth0", "eth1", "kube-ipvs0", "lo", "vxlan.calico" } iifname != "cali*" jump `+hepChainName("all", mapHepIn)) {
		t.Errorf("the \"*\" endpoint does not leave eth0, eth1 and the excluded interfaces alone:\n%s", dump)
	}
	// The address moves to eth2: after an interface refresh, by-ip
	// follows it.
	h.addrs["eth1"] = []string{"10.0.0.9"}
	h.addrs["eth2"] = []string{"10.2.0.1", "10.1.0.1"}
	d.apply(t)
	if strings.Contains(mapLine(d.nft.Dump(), mapHepIn), "eth2") {
		t.Errorf("followed the address before any refresh")
	}
	d.refreshInterfaces()
	d.apply(t)
	if in := mapLine(d.nft.Dump(), mapHepIn); !strings.Contains(in, `"eth2" : jump `+byIP) || strings.Contains(in, `"eth1"`) {
		t.Errorf("after the address moved to eth2: %s", in)
	}
	// No interface carries its addresses: the endpoint applies nowhere.
	delete(h.addrs, "eth2")
	d.refreshInterfaces()
	d.apply(t)
	if in := mapLine(d.nft.Dump(), mapHepIn); strings.Contains(in, byIP) {
		t.Errorf("endpoint still applied with its addresses gone: %s", in)
	}
}

// TestHostChangesReread: a change reported on Options.HostChanges makes
// Run read the host again, without waiting for the interface refresh.
func TestHostChangesReread(t *testing.T) {
	h := &lockedHost{f: &fakeHost{links: []string{"eth0", "eth1"}, addrs: map[string][]string{"eth0": {"10.0.0.1"}}}}
	changes := make(chan struct{}, 1)
	nft := NewFakeNFT()
	d, err := New(Options{NFT: nft, Ifaces: h, HostChanges: changes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "by-ip", ExpectedIPs: []netip.Addr{mustAddr("10.1.0.1")}})
	d.OnInSync()
	chainName := hepChainName("by-ip", mapHepIn)
	eventually(t, "endpoint programmed", func() bool { return strings.Contains(nft.Dump(), "chain "+chainName) })
	h.set("eth1", "10.1.0.1")
	changes <- struct{}{}
	eventually(t, "endpoint on eth1", func() bool { return strings.Contains(nft.Dump(), `"eth1" : jump `+chainName) })
}

type lockedHost struct {
	mu sync.Mutex
	f  *fakeHost
}

func (l *lockedHost) set(iface string, addrs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.addrs[iface] = addrs
}

func (l *lockedHost) LinkList() ([]netlink.Link, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.LinkList()
}

func (l *lockedHost) AddrList(link netlink.Link, fam int) ([]netlink.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.AddrList(link, fam)
}
