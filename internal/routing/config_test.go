package routing

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
)

// render prints a Desired as the readable text the table below compares:
// one line for the identity, one per peer (only fields that differ from
// the defaults), one per advertisement, the programmed pools and the
// problems.
func render(d Desired) string {
	if !d.Enabled {
		s := "disabled"
		for _, p := range d.Problems {
			s += "\nproblem " + p
		}
		return s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "as %d id %s port %d", d.ASN, d.RouterID, d.ListenPort)
	if d.ClusterID != "" {
		fmt.Fprintf(&b, " cluster %s", d.ClusterID)
	}
	for _, a := range d.ListenAddresses {
		fmt.Fprintf(&b, " listen %s", a)
	}
	for _, p := range d.Peers {
		fmt.Fprintf(&b, "\npeer %s port %d as %d %q %s", p.Address, p.Port, p.ASN, string(p.Type), p.Origin)
		if p.PeerNode != "" {
			fmt.Fprintf(&b, " node=%s", p.PeerNode)
		}
		if p.LocalASN != 0 {
			fmt.Fprintf(&b, " local-as=%d", p.LocalASN)
		}
		if p.LocalAddress.IsValid() {
			fmt.Fprintf(&b, " src=%s", p.LocalAddress)
		}
		if p.Password != "" {
			fmt.Fprintf(&b, " password=%s", p.Password)
		}
		if p.KeepaliveTime != 0 {
			fmt.Fprintf(&b, " keepalive=%s", p.KeepaliveTime)
		}
		if p.RestartTime != DefaultRestartTime {
			fmt.Fprintf(&b, " restart=%s", p.RestartTime)
		}
		if p.TTLSecurityHops != 0 {
			fmt.Fprintf(&b, " ttl-security=%d", p.TTLSecurityHops)
		}
		if p.NextHopMode != NextHopAuto {
			fmt.Fprintf(&b, " next-hop=%s", p.NextHopMode)
		}
		if p.RRClient {
			b.WriteString(" rr-client")
		}
		if p.ReachableBy.IsValid() {
			fmt.Fprintf(&b, " reachable-by=%s", p.ReachableBy)
		}
		if p.AllowOwnAS != 0 {
			fmt.Fprintf(&b, " allow-own-as=%d", p.AllowOwnAS)
		}
	}
	for _, a := range d.Advertise {
		fmt.Fprintf(&b, "\nadvertise %s %s", a.Prefix, a.Kind)
		if len(a.Communities) > 0 {
			fmt.Fprintf(&b, " %v", a.Communities)
		}
	}
	var pp []string
	for _, p := range d.ProgramPrefixes {
		pp = append(pp, p.String())
	}
	fmt.Fprintf(&b, "\nprogram %s", strings.Join(pp, " "))
	for _, p := range d.Problems {
		b.WriteString("\nproblem " + p)
	}
	return b.String()
}

func node(name, v4, v6 string, labels map[string]string) *api.Node {
	return &api.Node{ObjectMeta: api.ObjectMeta{Name: name, Labels: labels}, Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: v4, IPv6Address: v6}}}
}

func bgpPeer(name string, spec api.BGPPeerSpec) *api.BGPPeer {
	return &api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: name}, Spec: spec}
}

// fixture: three nodes; a and c are dual stack. Two IPv4 pools (one not
// exported) and one IPv6 pool.
func fixture() Input {
	return Input{
		NodeName: "a",
		Nodes: []*api.Node{
			node("a", "10.0.0.1/24", "fd00::1/64", map[string]string{"rack": "r1"}),
			node("b", "10.0.0.2/24", "", map[string]string{"rack": "r1"}),
			node("c", "10.0.0.3/24", "fd00::3/64", map[string]string{"rack": "r2"}),
		},
		BGPConfigs: []*api.BGPConfiguration{{ObjectMeta: api.ObjectMeta{Name: "default"}}},
		Pools: []*api.IPPool{
			{ObjectMeta: api.ObjectMeta{Name: "p4"}, Spec: api.IPPoolSpec{CIDR: "10.65.0.0/16"}},
			{ObjectMeta: api.ObjectMeta{Name: "private"}, Spec: api.IPPoolSpec{CIDR: "10.66.0.0/16", DisableBGPExport: true}},
			{ObjectMeta: api.ObjectMeta{Name: "p6"}, Spec: api.IPPoolSpec{CIDR: "fd00:65::/48"}},
		},
	}
}

const (
	meshB  = `peer 10.0.0.2 port 179 as 64512 "node-to-node mesh" mesh node=b src=10.0.0.1`
	meshC  = `peer 10.0.0.3 port 179 as 64512 "node-to-node mesh" mesh node=c src=10.0.0.1`
	meshC6 = `peer fd00::3 port 179 as 64512 "node-to-node mesh" mesh node=c src=fd00::1`
	pools  = "program 10.65.0.0/16 10.66.0.0/16 fd00:65::/48"
)

func lines(l ...string) string { return strings.Join(l, "\n") }

func TestCompute(t *testing.T) {
	def := func(in *Input) *api.BGPConfigurationSpec { return &in.BGPConfigs[0].Spec }
	meshOff := func(in *Input) { def(in).NodeToNodeMeshEnabled = ptrTo(false) }
	secrets := MapSecrets{"bgp/mesh": "meshpw", "bgp/tor": "torpw"}
	dur := func(d time.Duration) *api.Duration { v := api.DurationOf(d); return &v }

	tests := []struct {
		name string
		edit func(in *Input)
		want string
	}{
		{"defaults: full mesh over each shared family", func(in *Input) {},
			lines("as 64512 id 10.0.0.1 port 179", meshB, meshC, meshC6, pools)},
		{"no BGPConfiguration at all means the defaults", func(in *Input) { in.BGPConfigs = nil },
			lines("as 64512 id 10.0.0.1 port 179", meshB, meshC, meshC6, pools)},
		{"cluster AS from BGPConfiguration", func(in *Input) { def(in).ASNumber = asn(65100) },
			lines("as 65100 id 10.0.0.1 port 179",
				`peer 10.0.0.2 port 179 as 65100 "node-to-node mesh" mesh node=b src=10.0.0.1`,
				`peer 10.0.0.3 port 179 as 65100 "node-to-node mesh" mesh node=c src=10.0.0.1`,
				`peer fd00::3 port 179 as 65100 "node-to-node mesh" mesh node=c src=fd00::1`, pools)},
		{"node AS numbers override the cluster's, on both ends", func(in *Input) {
			in.Nodes[0].Spec.BGP.ASNumber = asn(65001)
			in.Nodes[1].Spec.BGP.ASNumber = asn(65002)
		}, lines("as 65001 id 10.0.0.1 port 179",
			`peer 10.0.0.2 port 179 as 65002 "node-to-node mesh" mesh node=b src=10.0.0.1`, meshC, meshC6, pools)},
		{"cluster listen port is every node's port", func(in *Input) { def(in).ListenPort = 1179 },
			lines("as 64512 id 10.0.0.1 port 1179",
				`peer 10.0.0.2 port 1179 as 64512 "node-to-node mesh" mesh node=b src=10.0.0.1`,
				`peer 10.0.0.3 port 1179 as 64512 "node-to-node mesh" mesh node=c src=10.0.0.1`,
				`peer fd00::3 port 1179 as 64512 "node-to-node mesh" mesh node=c src=fd00::1`, pools)},
		{"node-specific listen port: ours and the one we dial", func(in *Input) {
			in.BGPConfigs = append(in.BGPConfigs,
				&api.BGPConfiguration{ObjectMeta: api.ObjectMeta{Name: "node.a"}, Spec: api.BGPConfigurationSpec{ListenPort: 1790}},
				&api.BGPConfiguration{ObjectMeta: api.ObjectMeta{Name: "node.b"}, Spec: api.BGPConfigurationSpec{ListenPort: 1791}})
		}, lines("as 64512 id 10.0.0.1 port 1790",
			`peer 10.0.0.2 port 1791 as 64512 "node-to-node mesh" mesh node=b src=10.0.0.1`, meshC, meshC6, pools)},
		{"bindMode NodeIP listens on the node's addresses", func(in *Input) { def(in).BindMode = ptrTo("NodeIP") },
			lines("as 64512 id 10.0.0.1 port 179 listen 10.0.0.1 listen fd00::1", meshB, meshC, meshC6, pools)},
		{"mesh off and no BGPPeers: no sessions", meshOff,
			lines("as 64512 id 10.0.0.1 port 179", pools)},
		{"mesh password and restart time", func(in *Input) {
			def(in).NodeMeshPassword = &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "bgp", Key: "mesh"}}
			def(in).NodeMeshMaxRestartTime = dur(300 * time.Second)
			in.Nodes = in.Nodes[:2]
		}, lines("as 64512 id 10.0.0.1 port 179", meshB+" password=meshpw restart=5m0s", pools)},
		{"missing mesh secret: no unauthenticated mesh", func(in *Input) {
			def(in).NodeMeshPassword = &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "bgp", Key: "nope"}}
		}, lines("as 64512 id 10.0.0.1 port 179", pools,
			`problem BGPConfiguration default: nodeMeshPassword: secret "bgp" key "nope": secret not found; session skipped`)},
		{"missing optional secret: no password", func(in *Input) {
			def(in).NodeMeshPassword = &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "bgp", Key: "nope", Optional: ptrTo(true)}}
			in.Nodes = in.Nodes[:2]
		}, lines("as 64512 id 10.0.0.1 port 179", meshB, pools)},
		{"global peer by IP", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{bgpPeer("tor", api.BGPPeerSpec{PeerIP: "10.0.0.254", ASNumber: asn(65000)})}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 10.0.0.254 port 179 as 65000 "global" bgppeer/tor src=10.0.0.1`, pools)},
		{"peer IP with port, IPv4 and IPv6", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{
				bgpPeer("tor4", api.BGPPeerSpec{PeerIP: "10.0.0.254:1179", ASNumber: asn(65000)}),
				bgpPeer("tor6", api.BGPPeerSpec{PeerIP: "[fd00::fe]:1180", ASNumber: asn(65000)}),
			}
		}, lines("as 64512 id 10.0.0.1 port 179",
			`peer 10.0.0.254 port 1179 as 65000 "global" bgppeer/tor4 src=10.0.0.1`,
			`peer fd00::fe port 1180 as 65000 "global" bgppeer/tor6 src=fd00::1`, pools)},
		{"per-node peers: only this node's apply", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{
				bgpPeer("mine", api.BGPPeerSpec{Node: "a", PeerIP: "10.0.0.254", ASNumber: asn(65000)}),
				bgpPeer("theirs", api.BGPPeerSpec{Node: "b", PeerIP: "10.0.0.253", ASNumber: asn(65000)}),
			}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 10.0.0.254 port 179 as 65000 "node specific" bgppeer/mine src=10.0.0.1`, pools)},
		{"nodeSelector against this node's labels", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{
				bgpPeer("r1-tor", api.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerIP: "10.0.0.254", ASNumber: asn(65001)}),
				bgpPeer("r2-tor", api.BGPPeerSpec{NodeSelector: "rack == 'r2'", PeerIP: "10.0.1.254", ASNumber: asn(65002)}),
			}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 10.0.0.254 port 179 as 65001 "node specific" bgppeer/r1-tor src=10.0.0.1`, pools)},
		{"peerSelector picks other nodes, each family, never itself", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{bgpPeer("to-all", api.BGPPeerSpec{PeerSelector: "has(rack)"})}
		}, lines("as 64512 id 10.0.0.1 port 179",
			`peer 10.0.0.2 port 179 as 64512 "global" bgppeer/to-all node=b src=10.0.0.1`,
			`peer 10.0.0.3 port 179 as 64512 "global" bgppeer/to-all node=c src=10.0.0.1`,
			`peer fd00::3 port 179 as 64512 "global" bgppeer/to-all node=c src=fd00::1`, pools)},
		{"explicit peer beats the mesh for the same address", func(in *Input) {
			in.Nodes = in.Nodes[:2]
			in.Peers = []*api.BGPPeer{bgpPeer("b-special", api.BGPPeerSpec{PeerIP: "10.0.0.2", ASNumber: asn(64512), KeepaliveTime: dur(10 * time.Second)})}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 10.0.0.2 port 179 as 64512 "global" bgppeer/b-special node=b src=10.0.0.1 keepalive=10s`, pools)},
		{"node specific beats global; same rank: smaller name", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{
				bgpPeer("z-global", api.BGPPeerSpec{PeerIP: "10.0.0.254", ASNumber: asn(1)}),
				bgpPeer("y-node", api.BGPPeerSpec{Node: "a", PeerIP: "10.0.0.254", ASNumber: asn(2)}),
				bgpPeer("x-node", api.BGPPeerSpec{Node: "a", PeerIP: "10.0.0.254", ASNumber: asn(3)}),
			}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 10.0.0.254 port 179 as 3 "node specific" bgppeer/x-node src=10.0.0.1`, pools)},
		{"session options: local AS, password, timers, GTSM, next hop self, own-AS", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{bgpPeer("tor", api.BGPPeerSpec{
				PeerIP: "10.0.0.254", ASNumber: asn(65000), LocalASNumber: asn(65010),
				Password:      &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "bgp", Key: "tor"}},
				KeepaliveTime: dur(20 * time.Second), MaxRestartTime: dur(90 * time.Second),
				TTLSecurity: ptrTo(uint8(1)), NextHopMode: ptrTo("Self"), NumAllowedLocalASNumbers: ptrTo(int32(2)),
			})}
		}, lines("as 64512 id 10.0.0.1 port 179",
			`peer 10.0.0.254 port 179 as 65000 "global" bgppeer/tor local-as=65010 src=10.0.0.1 password=torpw keepalive=20s restart=1m30s ttl-security=1 next-hop=Self allow-own-as=2`, pools)},
		{"keepOriginalNextHop is nextHopMode Keep; sourceAddress None", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{bgpPeer("tor", api.BGPPeerSpec{PeerIP: "10.0.0.254", ASNumber: asn(65000), KeepOriginalNextHop: true, SourceAddress: "None"})}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 10.0.0.254 port 179 as 65000 "global" bgppeer/tor next-hop=Keep`, pools)},
		{"reachableBy", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{bgpPeer("far", api.BGPPeerSpec{PeerIP: "192.0.2.1", ASNumber: asn(65000), ReachableBy: "10.0.0.254"})}
		}, lines("as 64512 id 10.0.0.1 port 179", `peer 192.0.2.1 port 179 as 65000 "global" bgppeer/far src=10.0.0.1 reachable-by=10.0.0.254`, pools)},
		{"peer password secret missing: peer skipped", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{bgpPeer("tor", api.BGPPeerSpec{PeerIP: "10.0.0.254", ASNumber: asn(65000),
				Password: &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "bgp", Key: "gone"}}})}
		}, lines("as 64512 id 10.0.0.1 port 179", pools,
			`problem BGPPeer "tor": password: secret "bgp" key "gone": secret not found; session skipped`)},
		{"route reflector: other nodes are its clients", func(in *Input) {
			meshOff(in)
			in.Nodes[0].Spec.BGP.RouteReflectorClusterID = "1.1.1.1"
			in.Peers = []*api.BGPPeer{bgpPeer("rr-to-all", api.BGPPeerSpec{NodeSelector: "all()", PeerSelector: "all()"})}
		}, lines("as 64512 id 10.0.0.1 port 179 cluster 1.1.1.1",
			`peer 10.0.0.2 port 179 as 64512 "node specific" bgppeer/rr-to-all node=b src=10.0.0.1 rr-client`,
			`peer 10.0.0.3 port 179 as 64512 "node specific" bgppeer/rr-to-all node=c src=10.0.0.1 rr-client`,
			`peer fd00::3 port 179 as 64512 "node specific" bgppeer/rr-to-all node=c src=fd00::1 rr-client`, pools)},
		{"two reflectors of one cluster are not each other's clients", func(in *Input) {
			meshOff(in)
			in.Nodes[0].Spec.BGP.RouteReflectorClusterID = "1.1.1.1"
			in.Nodes[1].Spec.BGP.RouteReflectorClusterID = "1.1.1.1"
			in.Peers = []*api.BGPPeer{bgpPeer("rr-to-all", api.BGPPeerSpec{PeerSelector: "all()"})}
		}, lines("as 64512 id 10.0.0.1 port 179 cluster 1.1.1.1",
			`peer 10.0.0.2 port 179 as 64512 "global" bgppeer/rr-to-all node=b src=10.0.0.1`,
			`peer 10.0.0.3 port 179 as 64512 "global" bgppeer/rr-to-all node=c src=10.0.0.1 rr-client`,
			`peer fd00::3 port 179 as 64512 "global" bgppeer/rr-to-all node=c src=fd00::1 rr-client`, pools)},
		{"reflector of another cluster is a client (Calico's rule)", func(in *Input) {
			meshOff(in)
			in.Nodes = in.Nodes[:2]
			in.Nodes[0].Spec.BGP.RouteReflectorClusterID = "1.1.1.1"
			in.Nodes[1].Spec.BGP.RouteReflectorClusterID = "2.2.2.2"
			in.Peers = []*api.BGPPeer{bgpPeer("b", api.BGPPeerSpec{PeerIP: "10.0.0.2"})}
		}, lines("as 64512 id 10.0.0.1 port 179 cluster 1.1.1.1",
			`peer 10.0.0.2 port 179 as 64512 "global" bgppeer/b node=b src=10.0.0.1 rr-client`, pools)},
		{"a client peers only with its reflector", func(in *Input) {
			meshOff(in)
			in.Nodes[2].Spec.BGP.RouteReflectorClusterID = "1.1.1.1"
			in.Nodes[2].Labels["rr"] = "true"
			in.Peers = []*api.BGPPeer{bgpPeer("to-rr", api.BGPPeerSpec{PeerSelector: "has(rr)"})}
		}, lines("as 64512 id 10.0.0.1 port 179",
			`peer 10.0.0.3 port 179 as 64512 "global" bgppeer/to-rr node=c src=10.0.0.1`,
			`peer fd00::3 port 179 as 64512 "global" bgppeer/to-rr node=c src=fd00::1`, pools)},
		{"reverse peering: the reflector a peerSelector picks peers back with every node it applies to", func(in *Input) {
			meshOff(in)
			in.Nodes[0].Spec.BGP.RouteReflectorClusterID = "1.1.1.1"
			if in.Nodes[0].Labels == nil {
				in.Nodes[0].Labels = map[string]string{}
			}
			in.Nodes[0].Labels["rr"] = "true"
			in.Peers = []*api.BGPPeer{bgpPeer("to-rr", api.BGPPeerSpec{PeerSelector: "has(rr)"})}
		}, lines("as 64512 id 10.0.0.1 port 179 cluster 1.1.1.1",
			`peer 10.0.0.2 port 179 as 64512 "global" bgppeer/to-rr node=b src=10.0.0.1 rr-client`,
			`peer 10.0.0.3 port 179 as 64512 "global" bgppeer/to-rr node=c src=10.0.0.1 rr-client`,
			`peer fd00::3 port 179 as 64512 "global" bgppeer/to-rr node=c src=fd00::1 rr-client`, pools)},
		{"reverse peering only towards the nodes the BGPPeer applies to; Manual turns it off", func(in *Input) {
			meshOff(in)
			if in.Nodes[0].Labels == nil {
				in.Nodes[0].Labels = map[string]string{}
			}
			in.Nodes[0].Labels["rr"] = "true"
			in.Peers = []*api.BGPPeer{
				bgpPeer("c-to-rr", api.BGPPeerSpec{Node: "c", PeerSelector: "has(rr)"}),
				bgpPeer("b-to-rr", api.BGPPeerSpec{Node: "b", PeerSelector: "has(rr)", ReversePeering: ptrTo("Manual")}),
			}
		}, lines("as 64512 id 10.0.0.1 port 179",
			`peer 10.0.0.3 port 179 as 64512 "node specific" bgppeer/c-to-rr node=c src=10.0.0.1`,
			`peer fd00::3 port 179 as 64512 "node specific" bgppeer/c-to-rr node=c src=fd00::1`, pools)},
		{"advertise owned blocks and borrowed addresses; respect disableBGPExport", func(in *Input) {
			meshOff(in)
			in.OwnedBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.66.0.0/26"), netip.MustParsePrefix("fd00:65::/122"), netip.MustParsePrefix("10.99.0.0/26")}
			in.BorrowedIPs = []netip.Addr{netip.MustParseAddr("10.65.7.9"), netip.MustParseAddr("10.66.7.9"), netip.MustParseAddr("fd00:65::99")}
		}, lines("as 64512 id 10.0.0.1 port 179",
			"advertise 10.65.1.0/26 block", "advertise 10.65.7.9/32 borrowed", "advertise fd00:65::/122 block", "advertise fd00:65::99/128 borrowed", pools,
			"problem block 10.99.0.0/26 is in no IP pool; not advertised")},
		{"a non-exported pool nested in an exported one wins", func(in *Input) {
			meshOff(in)
			in.Pools = append(in.Pools, &api.IPPool{ObjectMeta: api.ObjectMeta{Name: "inner"}, Spec: api.IPPoolSpec{CIDR: "10.65.128.0/17", DisableBGPExport: true}})
			in.OwnedBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.65.200.0/26")}
		}, lines("as 64512 id 10.0.0.1 port 179", "advertise 10.65.1.0/26 block", "program 10.65.0.0/16 10.65.128.0/17 10.66.0.0/16 fd00:65::/48")},
		{"service ranges with communities (named, literal, large)", func(in *Input) {
			meshOff(in)
			s := def(in)
			s.ServiceClusterIPs = []api.ServiceIPBlock{{CIDR: "10.96.0.0/12"}}
			s.ServiceExternalIPs = []api.ServiceIPBlock{{CIDR: "192.0.2.0/24"}}
			s.ServiceLoadBalancerIPs = []api.ServiceIPBlock{{CIDR: "198.51.100.0/24"}}
			s.Communities = []api.Community{{Name: "svc", Value: "65000:100"}}
			s.PrefixAdvertisements = []api.PrefixAdvertisement{
				{CIDR: "10.96.0.0/12", Communities: []string{"svc", "65000:200"}},
				{CIDR: "192.0.0.0/8", Communities: []string{"65000:1:2"}},
				{CIDR: "10.65.0.0/16", Communities: []string{"svc"}},
			}
			in.OwnedBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")}
		}, lines("as 64512 id 10.0.0.1 port 179",
			"advertise 10.65.1.0/26 block [65000:100]",
			"advertise 10.96.0.0/12 serviceClusterIPs [65000:100 65000:200]",
			"advertise 192.0.2.0/24 serviceExternalIPs [65000:1:2]",
			"advertise 198.51.100.0/24 serviceLoadBalancerIPs", pools)},
		{"node-specific prefixAdvertisements override the default's", func(in *Input) {
			meshOff(in)
			def(in).PrefixAdvertisements = []api.PrefixAdvertisement{{CIDR: "10.65.0.0/16", Communities: []string{"1:1"}}}
			in.BGPConfigs = append(in.BGPConfigs, &api.BGPConfiguration{ObjectMeta: api.ObjectMeta{Name: "node.a"}, Spec: api.BGPConfigurationSpec{
				PrefixAdvertisements: []api.PrefixAdvertisement{{CIDR: "10.65.0.0/16", Communities: []string{"2:2"}}}}})
			in.OwnedBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")}
		}, lines("as 64512 id 10.0.0.1 port 179", "advertise 10.65.1.0/26 block [2:2]", pools)},
		{"programClusterRoutes Disabled programs nothing", func(in *Input) {
			meshOff(in)
			def(in).ProgramClusterRoutes = ptrTo("Disabled")
		}, lines("as 64512 id 10.0.0.1 port 179", "program ")},
		{"IPv6-only node: hashed router ID, IPv6 sessions only", func(in *Input) {
			in.Nodes[0].Spec.BGP.IPv4Address = ""
		}, lines("as 64512 id "+hashRouterID("a").String()+" port 179", meshC6, pools)},
		{"node without spec.bgp is not a speaker", func(in *Input) { in.Nodes[0].Spec.BGP = nil }, "disabled"},
		{"unknown node is not a speaker", func(in *Input) { in.NodeName = "zz" }, "disabled"},
		{"bad peers are skipped and reported", func(in *Input) {
			meshOff(in)
			in.Peers = []*api.BGPPeer{
				bgpPeer("no-as", api.BGPPeerSpec{PeerIP: "10.0.0.250"}),
				bgpPeer("bad-ip", api.BGPPeerSpec{PeerIP: "10.0.0.300", ASNumber: asn(1)}),
				bgpPeer("bad-sel", api.BGPPeerSpec{PeerSelector: "rack ==", ASNumber: asn(1)}),
				bgpPeer("self", api.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: asn(1)}),
				bgpPeer("node-ip", api.BGPPeerSpec{PeerIP: "10.0.0.3"}),
				bgpPeer("nothing", api.BGPPeerSpec{ASNumber: asn(1)}),
				nil,
			}
			in.Nodes = append(in.Nodes, nil, &api.Node{ObjectMeta: api.ObjectMeta{Name: "broken"}, Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: "fd00::9"}}})
		}, lines("as 64512 id 10.0.0.1 port 179",
			`peer 10.0.0.3 port 179 as 64512 "global" bgppeer/node-ip node=c src=10.0.0.1`, pools,
			`problem Node "broken": spec.bgp.ipv4Address "fd00::9" is not an IPv4 address`,
			`problem BGPPeer "no-as": peerIP without asNumber; skipped`,
			`problem BGPPeer "bad-ip": peerIP "10.0.0.300": invalid address`,
			`problem BGPPeer "bad-sel": peerSelector: invalid selector "rack ==": at position 7: expected quoted string after ==, found end of selector`,
			`problem BGPPeer "nothing": neither peerIP nor peerSelector; skipped`)},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture()
			tc.edit(&in)
			d, err := Compute(in, secrets)
			if err != nil {
				t.Fatalf("Compute: %v", err)
			}
			if got := render(d); got != tc.want {
				t.Errorf("got\n%s\n\nwant\n%s", got, tc.want)
			}
			// Pure: the same input gives the same output.
			d2, _ := Compute(in, secrets)
			if render(d2) != render(d) {
				t.Errorf("not deterministic")
			}
		})
	}
}

func TestComputeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Input)
		want string
	}{
		{"own address invalid", func(in *Input) { in.Nodes[0].Spec.BGP.IPv4Address = "nonsense" }, `node "a": spec.bgp.ipv4Address "nonsense" is not an IPv4 address`},
		{"own cluster ID invalid", func(in *Input) { in.Nodes[0].Spec.BGP.RouteReflectorClusterID = "fd00::1" }, `node "a": spec.bgp.routeReflectorClusterID "fd00::1" is not an IPv4 address`},
		{"no address at all", func(in *Input) { in.Nodes[0].Spec.BGP = &api.NodeBGPSpec{ASNumber: asn(1)} }, `node "a": spec.bgp has neither ipv4Address nor ipv6Address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture()
			tc.edit(&in)
			_, err := Compute(in, nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %s", err, tc.want)
			}
		})
	}
}

func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir+"/bgp/tor", "filepw\n"); err != nil {
		t.Fatal(err)
	}
	env := EnvSecrets{Lookup: func(k string) (string, bool) {
		if k == "SERVAL_SECRET_BGP_PASSWORDS_TOR_1" {
			return "envpw", true
		}
		return "", false
	}}
	src := SecretSources{FileSecrets{Dir: dir}, env}
	for _, tc := range []struct {
		name, key, want, err string
	}{
		{"bgp", "tor", "filepw", ""},
		{"bgp-passwords", "tor.1", "envpw", ""},
		{"bgp", "missing", "", "secret not found"},
		{"..", "passwd", "", "invalid name"},
		{"bgp", "../../etc", "", "invalid name"},
	} {
		got, err := src.Secret(tc.name, tc.key)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Secret(%q, %q) = %q, %v; want %q, %q", tc.name, tc.key, got, err, tc.want, tc.err)
		}
	}
}
