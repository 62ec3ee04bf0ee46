package overlay

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/servalnet/serval/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func node(name, v4, v6, t4, mac4, t6, mac6 string) *api.Node {
	n := &api.Node{}
	n.Name = name
	if v4 != "" || v6 != "" {
		n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: v4, IPv6Address: v6}
	}
	n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = t4, mac4
	n.Spec.IPv6VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddrV6 = t6, mac6
	return n
}

func pool(name, cidr string, vx, ipip api.EncapMode) *api.IPPool {
	p := &api.IPPool{Spec: api.IPPoolSpec{CIDR: cidr, VXLANMode: vx, IPIPMode: ipip}}
	p.Name = name
	p.SetDefaults()
	return p
}

func block(cidr, host string) Block {
	return Block{CIDR: netip.MustParsePrefix(cidr), Node: host}
}

func ptr[T any](v T) *T { return &v }

// Three hosts: h1 (this one) and h2 on 10.0.1.0/24, h3 on 10.0.2.0/24.
func nodes() []*api.Node {
	return []*api.Node{
		node("h1", "10.0.1.11/24", "fd10:1::11/64", "192.168.0.1", "66:00:00:00:00:01", "fd00:100::1", "66:00:00:00:06:01"),
		node("h2", "10.0.1.12/24", "fd10:1::12/64", "192.168.0.65", "66:00:00:00:00:02", "fd00:100::41", "66:00:00:00:06:02"),
		node("h3", "10.0.2.13/24", "fd10:2::13/64", "192.168.0.129", "66:00:00:00:00:03", "fd00:100::81", "66:00:00:00:06:03"),
	}
}

// ipipNodes are nodes() with IPIP tunnel addresses.
func ipipNodes() []*api.Node {
	ns := nodes()
	for i, a := range []string{"192.168.0.2", "192.168.0.66", "192.168.0.130"} {
		ns[i].Spec.BGP.IPv4IPIPTunnelAddr = a
	}
	return ns
}

func blocks() []Block {
	return []Block{
		block("192.168.0.0/26", "h1"), block("192.168.0.64/26", "h2"), block("192.168.0.128/26", "h3"),
		block("192.168.0.192/26", ""),
		block("fd00:100::/122", "h1"), block("fd00:100::40/122", "h2"), block("fd00:100::80/122", "h3"),
		block("172.16.0.0/26", "h2"), block("172.16.0.64/26", "h3"),
	}
}

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"always", Input{Node: "h1", Nodes: nodes(), Blocks: blocks(), UplinkMTU: 9000, Pools: []*api.IPPool{
			pool("v4", "192.168.0.0/16", api.EncapAlways, ""), pool("v6", "fd00:100::/48", api.EncapAlways, ""),
			pool("routed", "172.16.0.0/16", "", "")}}},
		{"crosssubnet", Input{Node: "h1", Nodes: nodes(), Blocks: blocks(), Pools: []*api.IPPool{
			pool("v4", "192.168.0.0/16", api.EncapCrossSubnet, ""), pool("v6", "fd00:100::/48", api.EncapCrossSubnet, "")}}},
		{"settings", Input{Node: "h1", Nodes: nodes(), Blocks: blocks(), UplinkMTU: 1400,
			Settings: Settings{VXLANPort: ptr(8472), VXLANVNI: ptr(77), VXLANMTU: ptr(1300), VXLANMTU6: ptr(1280)},
			Pools:    []*api.IPPool{pool("v4", "192.168.0.0/16", api.EncapAlways, ""), pool("v6", "fd00:100::/48", api.EncapAlways, "")}}},
		{"disabled", Input{Node: "h1", Nodes: nodes(), Blocks: blocks(), Settings: Settings{VXLANEnabled: ptr(false)},
			Pools: []*api.IPPool{pool("v4", "192.168.0.0/16", api.EncapAlways, "")}}},
		{"ipip_unavailable", Input{Node: "h1", Nodes: nodes(), Blocks: blocks(), Pools: []*api.IPPool{
			pool("ipip", "192.168.0.0/16", "", api.EncapAlways), pool("routed", "172.16.0.0/16", "", "")}}},
		{"no_tunnel_yet", Input{Node: "h1", Blocks: blocks(), Pools: []*api.IPPool{pool("v4", "192.168.0.0/16", api.EncapAlways, "")},
			Nodes: []*api.Node{node("h1", "10.0.1.11/24", "", "", "", "", ""), node("h3", "10.0.2.13/24", "", "192.168.0.129", "66:00:00:00:00:03", "", "")}}},
		{"peer_without_tunnel", Input{Node: "h1", Blocks: blocks(), Pools: []*api.IPPool{pool("v4", "192.168.0.0/16", api.EncapAlways, "")},
			Nodes: []*api.Node{nodes()[0], node("h2", "10.0.1.12/24", "", "", "", "", "")}}},
		{"ipip_always", Input{Node: "h1", Nodes: ipipNodes(), Blocks: blocks(), IPIPAvailable: true, UplinkMTU: 9000, Pools: []*api.IPPool{
			pool("ipip", "192.168.0.0/16", "", api.EncapAlways)}}},
		{"ipip_crosssubnet", Input{Node: "h1", Nodes: ipipNodes(), Blocks: blocks(), IPIPAvailable: true,
			Settings: Settings{IPIPMTU: ptr(1400)}, Pools: []*api.IPPool{pool("ipip", "192.168.0.0/16", "", api.EncapCrossSubnet)}}},
		{"ipip_disabled", Input{Node: "h1", Nodes: ipipNodes(), Blocks: blocks(), IPIPAvailable: true,
			Settings: Settings{IPIPEnabled: ptr(false)}, Pools: []*api.IPPool{pool("ipip", "192.168.0.0/16", "", api.EncapAlways)}}},
		{"never", Input{Node: "h1", Nodes: nodes(), Blocks: blocks(), Pools: []*api.IPPool{pool("v4", "192.168.0.0/16", "", "")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Compute(tc.in).Text()
			path := filepath.Join("testdata", tc.name+".golden")
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
				t.Errorf("Compute(%s):\n got:\n%s\nwant:\n%s", tc.name, got, want)
			}
		})
	}
}

// A host moving to another subnet switches between native and tunnel.
func TestCrossSubnetFollowsSubnet(t *testing.T) {
	pools := []*api.IPPool{pool("v4", "192.168.0.0/16", api.EncapCrossSubnet, "")}
	ns := nodes()
	kind := func() RouteKind {
		for _, r := range Compute(Input{Node: "h1", Nodes: ns, Blocks: blocks(), Pools: pools}).Routes {
			if r.Node == "h2" {
				return r.Kind
			}
		}
		return ""
	}
	if k := kind(); k != Native {
		t.Fatalf("h2 on the same subnet: route kind %q, want native", k)
	}
	ns[1].Spec.BGP.IPv4Address = "10.0.2.12/24"
	if k := kind(); k != ViaTunnel {
		t.Fatalf("h2 moved to 10.0.2.0/24: route kind %q, want vxlan", k)
	}
}
