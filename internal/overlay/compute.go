package overlay

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/servalnet/serval/internal/api"
)

// Input is what Compute needs: a snapshot of the datastore plus two facts
// about the host.
type Input struct {
	Node  string
	Nodes []*api.Node
	Pools []*api.IPPool
	// Blocks are the IPAM blocks with the host each is affine to
	// (confirmed BlockAffinities).
	Blocks []Block
	Settings
	// UplinkMTU is the MTU of the interface carrying the host's address
	// (0: unknown, 1500 assumed).
	UplinkMTU int
	// IPIPAvailable says whether the kernel can make IPIP devices.
	IPIPAvailable bool
}

// Block is one IPAM block and its host.
type Block struct {
	CIDR netip.Prefix
	Node string
}

type hostInfo struct {
	addr   [2]netip.Prefix // [0] IPv4, [1] IPv6: address with its subnet
	tunnel [2]netip.Addr
	mac    [2]net.HardwareAddr
	ipip   netip.Addr
}

func fam(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

func infoOf(n *api.Node) hostInfo {
	var h hostInfo
	if b := n.Spec.BGP; b != nil {
		h.addr[0], _ = netip.ParsePrefix(b.IPv4Address)
		h.addr[1], _ = netip.ParsePrefix(b.IPv6Address)
		h.ipip, _ = netip.ParseAddr(b.IPv4IPIPTunnelAddr)
	}
	for i, a := range []string{n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr} {
		if ip, err := netip.ParseAddr(a); err == nil {
			h.tunnel[i] = ip
		}
	}
	for i, m := range []string{n.Spec.VXLANTunnelMACAddr, n.Spec.VXLANTunnelMACAddrV6} {
		if hw, err := net.ParseMAC(m); err == nil {
			h.mac[i] = hw
		}
	}
	return h
}

// Compute works out what host in.Node must program. It never fails: what
// it cannot do becomes a Problem and an unreachable route.
func Compute(in Input) Desired {
	var d Desired
	hosts := map[string]hostInfo{}
	for _, n := range in.Nodes {
		h := infoOf(n)
		hosts[n.Name] = h
		for _, p := range h.addr {
			if p.IsValid() {
				d.KnownHosts = append(d.KnownHosts, p.Addr())
			}
		}
	}
	slices.SortFunc(d.KnownHosts, func(a, b netip.Addr) int { return a.Compare(b) })
	d.KnownHosts = slices.Compact(d.KnownHosts)
	self, selfKnown := hosts[in.Node]

	type poolInfo struct {
		cidr netip.Prefix
		spec *api.IPPoolSpec
		name string
	}
	var pools []poolInfo
	var vxlanFam [2]bool
	ipipWanted := false
	for _, p := range in.Pools {
		c, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil {
			continue
		}
		pools = append(pools, poolInfo{c.Masked(), &p.Spec, p.Name})
		if on(p.Spec.VXLANMode) {
			vxlanFam[fam(c.Addr())] = true
		}
		if on(p.Spec.IPIPMode) {
			ipipWanted = true
			if !in.IPIPAvailable {
				d.Problems = append(d.Problems, fmt.Sprintf("IP pool %q asks for ipipMode %s but this kernel has no IPIP support: its remote blocks are unreachable from this host", p.Name, p.Spec.IPIPMode))
			}
		}
	}
	enabled := in.VXLANEnabled == nil || *in.VXLANEnabled
	uplink := in.UplinkMTU
	if uplink == 0 {
		uplink = 1500
	}
	var devs [2]*Device
	for f, want := range vxlanFam {
		if !want {
			continue
		}
		if !enabled {
			d.Problems = append(d.Problems, fmt.Sprintf("an IPv%d pool has vxlanMode on but FelixConfiguration vxlanEnabled is false: its remote blocks are unreachable from this host", 4+2*f))
			continue
		}
		if f == 0 {
			d.NeedTunnel4 = true
		} else {
			d.NeedTunnel6 = true
		}
		dev := Device{Name: DeviceV4, VNI: DefaultVNI, Port: DefaultPort, MTU: uplink - OverheadV4}
		mtu := in.VXLANMTU
		if f == 1 {
			dev.Name, dev.IPv6, dev.MTU, mtu = DeviceV6, true, uplink-OverheadV6, in.VXLANMTU6
		}
		if in.VXLANVNI != nil && *in.VXLANVNI > 0 {
			dev.VNI = *in.VXLANVNI
		}
		if in.VXLANPort != nil && *in.VXLANPort > 0 {
			dev.Port = *in.VXLANPort
		}
		if mtu != nil && *mtu > 0 {
			dev.MTU = *mtu
		}
		if f == 0 {
			d.MTU4 = dev.MTU
		} else {
			d.MTU6 = dev.MTU
		}
		switch {
		case !selfKnown || !self.addr[f].IsValid():
			d.Problems = append(d.Problems, fmt.Sprintf("this host's Node has no IPv%d address (spec.bgp.ipv%dAddress): no VXLAN device", 4+2*f, 4+2*f))
		case !self.tunnel[f].IsValid() || self.mac[f] == nil:
			d.Problems = append(d.Problems, fmt.Sprintf("this host has no IPv%d VXLAN tunnel address or MAC yet", 4+2*f))
		default:
			dev.Local, dev.Tunnel, dev.MAC = self.addr[f].Addr(), self.tunnel[f], self.mac[f]
			d.Devices = append(d.Devices, dev)
			devs[f] = &dev
		}
	}

	var ipipDev *Device
	if ipipWanted && in.IPIPAvailable {
		switch {
		case in.IPIPEnabled != nil && !*in.IPIPEnabled:
			d.Problems = append(d.Problems, "an IP pool has ipipMode on but FelixConfiguration ipipEnabled is false: its remote blocks are unreachable from this host")
		default:
			d.NeedTunnelIPIP = true
			dev := Device{Name: DeviceIPIP, IPIP: true, MTU: uplink - OverheadIPIP}
			if in.IPIPMTU != nil && *in.IPIPMTU > 0 {
				dev.MTU = *in.IPIPMTU
			}
			d.MTUIPIP = dev.MTU
			if !selfKnown || !self.ipip.IsValid() {
				d.Problems = append(d.Problems, "this host has no IPIP tunnel address yet")
				break
			}
			dev.Tunnel = self.ipip
			d.Devices = append(d.Devices, dev)
			ipipDev = &dev
		}
	}

	neigh := map[string]bool{}
	for _, b := range in.Blocks {
		owner, cidr := b.Node, b.CIDR.Masked()
		if owner == "" || owner == in.Node || !cidr.IsValid() {
			continue
		}
		i := slices.IndexFunc(pools, func(p poolInfo) bool {
			return p.cidr.Addr().BitLen() == cidr.Addr().BitLen() && p.cidr.Bits() <= cidr.Bits() && p.cidr.Contains(cidr.Addr())
		})
		if i < 0 {
			continue
		}
		p := pools[i]
		f := fam(cidr.Addr())
		r := Route{Dst: cidr, Node: owner, Kind: Unreachable}
		remote, known := hosts[owner]
		switch {
		case on(p.spec.IPIPMode):
			if p.spec.IPIPMode == api.EncapCrossSubnet && known && selfKnown && sameSubnet(self.addr[f], remote.addr[f]) {
				r.Kind, r.Via = Native, remote.addr[f].Addr()
				break
			}
			if ipipDev != nil && known && remote.addr[f].IsValid() {
				r.Kind, r.Via, r.Dev = ViaIPIP, remote.addr[f].Addr(), ipipDev.Name
			}
		case on(p.spec.VXLANMode):
			if p.spec.VXLANMode == api.EncapCrossSubnet && known && selfKnown && sameSubnet(self.addr[f], remote.addr[f]) {
				r.Kind, r.Via = Native, remote.addr[f].Addr()
				break
			}
			if devs[f] == nil || !known || !remote.addr[f].IsValid() || !remote.tunnel[f].IsValid() || remote.mac[f] == nil {
				if enabled && devs[f] != nil {
					d.Warnings = append(d.Warnings, fmt.Sprintf("block %s of node %q is unreachable: the node has no VXLAN tunnel address, MAC or host address of its family yet", cidr, owner))
				}
				break
			}
			dev := devs[f]
			r.Kind, r.Via, r.Dev = ViaTunnel, remote.tunnel[f], dev.Name
			key := dev.Name + remote.tunnel[f].String()
			if !neigh[key] {
				neigh[key] = true
				d.Neighbours = append(d.Neighbours, Neighbour{Dev: dev.Name, IP: remote.tunnel[f], MAC: remote.mac[f]})
				d.FDB = append(d.FDB, FDB{Dev: dev.Name, MAC: remote.mac[f], Dst: remote.addr[f].Addr()})
			}
		default:
			continue // routed: BGP or the fabric carries it
		}
		d.Routes = append(d.Routes, r)
	}
	slices.SortFunc(d.Routes, func(a, b Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return a.Dst.Bits() - b.Dst.Bits()
	})
	slices.SortFunc(d.Neighbours, func(a, b Neighbour) int { return a.IP.Compare(b.IP) })
	slices.SortFunc(d.FDB, func(a, b FDB) int {
		if c := strings.Compare(a.Dev, b.Dev); c != 0 {
			return c
		}
		return a.Dst.Compare(b.Dst)
	})
	slices.Sort(d.Problems)
	d.Problems = slices.Compact(d.Problems)
	slices.Sort(d.Warnings)
	return d
}

func on(m api.EncapMode) bool { return m == api.EncapAlways || m == api.EncapCrossSubnet }

// sameSubnet: the remote host's address lies in this host's subnet (as
// Calico decides CrossSubnet).
func sameSubnet(self, remote netip.Prefix) bool {
	return self.IsValid() && remote.IsValid() && self.Masked().Contains(remote.Addr())
}

// Text renders d one line per item, for goldens and `servalctl` alike.
func (d Desired) Text() string {
	var b strings.Builder
	for _, dv := range d.Devices {
		if dv.IPIP {
			fmt.Fprintf(&b, "device %s ipip mtu %d tunnel %s\n", dv.Name, dv.MTU, dv.Tunnel)
			continue
		}
		fmt.Fprintf(&b, "device %s vni %d port %d mtu %d local %s tunnel %s mac %s\n", dv.Name, dv.VNI, dv.Port, dv.MTU, dv.Local, dv.Tunnel, dv.MAC)
	}
	for _, r := range d.Routes {
		switch r.Kind {
		case ViaTunnel:
			fmt.Fprintf(&b, "route %s via %s dev %s onlink proto %d # %s\n", r.Dst, r.Via, r.Dev, RouteProtocol, r.Node)
		case ViaIPIP:
			fmt.Fprintf(&b, "route %s via %s dev %s onlink proto %d # %s\n", r.Dst, r.Via, r.Dev, RouteProtocol, r.Node)
		case Native:
			fmt.Fprintf(&b, "route %s via %s proto %d # %s\n", r.Dst, r.Via, RouteProtocol, r.Node)
		default:
			fmt.Fprintf(&b, "route unreachable %s proto %d # %s\n", r.Dst, RouteProtocol, r.Node)
		}
	}
	for _, n := range d.Neighbours {
		fmt.Fprintf(&b, "neigh %s lladdr %s dev %s permanent\n", n.IP, n.MAC, n.Dev)
	}
	for _, f := range d.FDB {
		fmt.Fprintf(&b, "fdb %s dev %s dst %s self permanent\n", f.MAC, f.Dev, f.Dst)
	}
	if len(d.KnownHosts) > 0 {
		s := make([]string, len(d.KnownHosts))
		for i, a := range d.KnownHosts {
			s[i] = a.String()
		}
		fmt.Fprintf(&b, "known-hosts %s\n", strings.Join(s, " "))
	}
	fmt.Fprintf(&b, "mtu ipv4 %d ipv6 %d tunnel4 %t tunnel6 %t\n", d.MTU4, d.MTU6, d.NeedTunnel4, d.NeedTunnel6)
	if d.NeedTunnelIPIP {
		fmt.Fprintf(&b, "mtu ipip %d tunnel-ipip true\n", d.MTUIPIP)
	}
	for _, p := range d.Problems {
		fmt.Fprintf(&b, "problem %s\n", p)
	}
	for _, w := range d.Warnings {
		fmt.Fprintf(&b, "warning %s\n", w)
	}
	return b.String()
}
