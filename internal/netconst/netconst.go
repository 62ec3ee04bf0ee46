// Package netconst holds the few numbers and names that the CNI plugin and
// the node agent must agree on, so that each can recognise what the other
// programmed into the kernel. It has no dependencies.
//
//	route := netlink.Route{Dst: dst, LinkIndex: idx, Scope: netlink.SCOPE_LINK,
//		Protocol: netconst.RouteProtocol}
//	routes, _ := netlink.RouteListFiltered(netlink.FAMILY_ALL,
//		&netlink.Route{Protocol: netconst.RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
package netconst

// RouteProtocol is the rtnetlink protocol number (rtm_protocol) of every
// route Serval programs: the /32 and /128 routes to local workloads that
// the CNI plugin adds, and the routes the node agent manages. Marking them
// lets each component list and remove its own routes and nothing else. 80
// is unassigned in iproute2's rt_protos (kernel 2, boot 3, static 4, bird
// 12, babel 42, openr 99, bgp 186...). `ip route show proto 80` lists them.
const RouteProtocol = 80

// DefaultInterfacePrefix starts the host-side name of every workload veth
// (as Calico's "cali"); the rest is 11 hex digits of a hash of the
// endpoint's identity, so names fit in 15 characters.
const DefaultInterfacePrefix = "cali"

// HostVethMAC is the fixed MAC address of the host side of every workload
// veth. The workload only ever talks to its gateway through it, so one
// well-known MAC is enough, and it never changes when the veth is recreated.
const HostVethMAC = "ee:ee:ee:ee:ee:ee"

// WorkloadGatewayIPv4 is the next hop of a workload's IPv4 default route:
// a link-local address the host side answers for by proxy ARP.
const WorkloadGatewayIPv4 = "169.254.1.1"

// WorkloadGatewayIPv6 is the next hop of a workload's IPv6 default route:
// the EUI-64 link-local address of the host side, derived from HostVethMAC.
const WorkloadGatewayIPv6 = "fe80::ecee:eeff:feee:eeee"

// MTUFile is where serval-node writes the MTU new workloads should get
// (the uplink's, less the overhead of the encapsulation in use), and where
// the CNI plugin reads it when its configuration has no explicit mtu.
const MTUFile = "/var/lib/serval/mtu"
