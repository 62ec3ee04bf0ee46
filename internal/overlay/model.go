package overlay

import (
	"net"
	"net/netip"
)

// RouteProtocol marks the routes the overlay owns (`ip route show proto
// 81`). It differs from netconst.RouteProtocol (80) on purpose: the BGP
// kernel sync owns proto-80 gateway routes and leaves any other route for
// the same prefix alone, so an overlay route always wins over a learned one.
const RouteProtocol = 81

// Device names and defaults, as Calico's (vxlan.calico, VNI 4096, 4789).
const (
	DeviceV4 = "vxlan.serval"
	DeviceV6 = "vxlan-v6.serval"
	// DeviceIPIP is the kernel's fallback IPIP device (as Calico uses):
	// it takes packets to any remote, the outer destination being the
	// route's gateway.
	DeviceIPIP   = "tunl0"
	DefaultVNI   = 4096
	DefaultPort  = 4789
	OverheadV4   = 50
	OverheadV6   = 70
	OverheadIPIP = 20
)

// Settings are the FelixConfiguration fields the overlay honours (nil:
// unset, the default applies).
type Settings struct {
	VXLANEnabled        *bool
	VXLANPort           *int
	VXLANVNI            *int
	VXLANMTU, VXLANMTU6 *int
	IPIPEnabled         *bool
	IPIPMTU             *int
}

// Device is one tunnel device to have: VXLAN, or with IPIP set the
// tunl0 device (VNI, Port, Local and MAC unused).
type Device struct {
	Name   string
	IPIP   bool
	IPv6   bool
	VNI    int
	Port   int
	MTU    int
	Local  netip.Addr       // the host's own address (outer source)
	Tunnel netip.Addr       // the device's address
	MAC    net.HardwareAddr // the device's MAC, as published in the Node
}

// RouteKind says how a remote block is reached.
type RouteKind string

const (
	// ViaTunnel: via the remote tunnel address, onlink on the device.
	ViaTunnel RouteKind = "vxlan"
	// ViaIPIP: via the remote host's address, onlink on tunl0 (the
	// gateway is the outer destination).
	ViaIPIP RouteKind = "ipip"
	// Native: via the remote host's address, as the fabric routes it
	// (CrossSubnet within one subnet).
	Native RouteKind = "native"
	// Unreachable: the pool asks for what this host cannot do (IPIP with
	// no IPIP module, VXLAN disabled, a peer with no tunnel yet); the
	// block is refused rather than routed in the clear.
	Unreachable RouteKind = "unreachable"
)

// Route is one route to a remote block.
type Route struct {
	Dst  netip.Prefix
	Kind RouteKind
	Via  netip.Addr // remote tunnel address (ViaTunnel) or host address (Native)
	Dev  string     // ViaTunnel only
	Node string     // the block's host, for logs and status
}

// Neighbour is a static ARP/NDP entry on a device: the remote tunnel
// address has the remote device's MAC.
type Neighbour struct {
	Dev string
	IP  netip.Addr
	MAC net.HardwareAddr
}

// FDB is a static forwarding entry on a device: frames to MAC are sent to
// the remote host's address.
type FDB struct {
	Dev string
	MAC net.HardwareAddr
	Dst netip.Addr
}

// Desired is everything one host must program.
type Desired struct {
	Devices    []Device
	Routes     []Route
	Neighbours []Neighbour
	FDB        []FDB
	// KnownHosts are the addresses of every Node: the only sources VXLAN
	// packets are accepted from.
	KnownHosts []netip.Addr
	// NeedTunnel4/6 say that this host needs a tunnel address of that
	// family (some pool of the family has VXLAN on and VXLAN is enabled).
	NeedTunnel4, NeedTunnel6 bool
	// NeedTunnelIPIP: this host needs an IPIP tunnel address.
	NeedTunnelIPIP bool
	// Problems explain what this host refuses or lacks (status and
	// readiness: the host is not ready while there are any).
	Problems []string
	// Warnings are about other hosts (a peer with no tunnel address yet):
	// logged, their blocks unreachable, but this host stays ready.
	Warnings []string
	// MTU4/MTU6 are the workload MTUs the overlay asks for (0: no
	// encapsulation of that family; the uplink MTU stands).
	MTU4, MTU6 int
	MTUIPIP    int
}
