package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/servalnet/serval/internal/api"
)

// recorder is a Handle that keeps links in memory and records every
// change, for goldens of what is programmed where the kernel cannot run
// it (IPIP: this machine's kernel has no IPIP module).
type recorder struct {
	links map[string]netlink.Link
	ops   []string
}

func (r *recorder) op(f string, a ...any) { r.ops = append(r.ops, fmt.Sprintf(f, a...)) }

func (r *recorder) LinkByName(name string) (netlink.Link, error) {
	if l, ok := r.links[name]; ok {
		return l, nil
	}
	return nil, errors.New("Link not found")
}

func (r *recorder) LinkAdd(l netlink.Link) error {
	l.Attrs().Index = 10 + len(r.links)
	r.links[l.Attrs().Name] = l
	r.op("link add %s type %s mtu %d", l.Attrs().Name, l.Type(), l.Attrs().MTU)
	return nil
}
func (r *recorder) LinkDel(l netlink.Link) error {
	delete(r.links, l.Attrs().Name)
	r.op("link del %s", l.Attrs().Name)
	return nil
}
func (r *recorder) LinkSetUp(l netlink.Link) error {
	r.op("link set %s up", l.Attrs().Name)
	return nil
}
func (r *recorder) LinkSetMTU(l netlink.Link, mtu int) error {
	r.op("link set %s mtu %d", l.Attrs().Name, mtu)
	return nil
}
func (r *recorder) AddrList(netlink.Link, int) ([]netlink.Addr, error) { return nil, nil }
func (r *recorder) AddrReplace(l netlink.Link, a *netlink.Addr) error {
	r.op("addr replace %s dev %s", a.IPNet, l.Attrs().Name)
	return nil
}
func (r *recorder) AddrDel(l netlink.Link, a *netlink.Addr) error {
	r.op("addr del %s dev %s", a.IPNet, l.Attrs().Name)
	return nil
}
func (r *recorder) RouteListFiltered(int, *netlink.Route, uint64) ([]netlink.Route, error) {
	return nil, nil
}
func (r *recorder) RouteReplace(rt *netlink.Route) error {
	s := fmt.Sprintf("route replace %s", rt.Dst)
	if rt.Type == 7 { // RTN_UNREACHABLE
		s = "route replace unreachable " + rt.Dst.String()
	}
	if rt.Gw != nil {
		s += " via " + rt.Gw.String()
	}
	for n, l := range r.links {
		if rt.LinkIndex != 0 && l.Attrs().Index == rt.LinkIndex {
			s += " dev " + n
		}
	}
	if rt.Flags&int(netlink.FLAG_ONLINK) != 0 {
		s += " onlink"
	}
	r.op("%s proto %d", s, rt.Protocol)
	return nil
}
func (r *recorder) RouteDel(rt *netlink.Route) error            { r.op("route del %s", rt.Dst); return nil }
func (r *recorder) NeighList(int, int) ([]netlink.Neigh, error) { return nil, nil }
func (r *recorder) NeighSet(n *netlink.Neigh) error {
	r.op("neigh set %s lladdr %s family %d", n.IP, n.HardwareAddr, n.Family)
	return nil
}
func (r *recorder) NeighDel(n *netlink.Neigh) error { r.op("neigh del %s", n.IP); return nil }

// TestManagerProgramsIPIP: on a kernel with IPIP, tunl0 is created (or
// taken as it is), tuned, and the remote blocks routed onlink through it
// to the remote hosts' addresses; CrossSubnet keeps h2 native.
func TestManagerProgramsIPIP(t *testing.T) {
	for _, mode := range []api.EncapMode{api.EncapAlways, api.EncapCrossSubnet} {
		t.Run(string(mode), func(t *testing.T) {
			rec := &recorder{links: map[string]netlink.Link{}}
			d := Compute(Input{Node: "h1", Nodes: ipipNodes(), Blocks: blocks(), IPIPAvailable: true, UplinkMTU: 1500,
				Pools: []*api.IPPool{pool("ipip", "192.168.0.0/16", "", mode)}})
			if err := NewManager(rec, nil).Apply(d); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(rec.ops, "\n") + "\n"
			path := filepath.Join("testdata", "ipip_program_"+strings.ToLower(string(mode))+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden (run with -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("programmed:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
