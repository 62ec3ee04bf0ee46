// Package overlay makes workload blocks reachable where the fabric cannot
// route them: IPPool vxlanMode Always / CrossSubnet (and ipipMode, which
// this package refuses to route in the clear when the kernel cannot
// provide it).
//
// Compute is pure: from the Nodes, IP pools, IPAM blocks and the VXLAN
// settings of FelixConfiguration it works out what one host must program
// (one VXLAN device per family, a route per remote block, a static
// neighbour entry per remote tunnel address and an FDB entry per remote
// device MAC: no flooding, no multicast, no BGP). Manager programs that
// into the kernel through netlink and reads it back on every apply, so a
// restart or a hand edit converges. Routes carry their own protocol
// number (RouteProtocol, 81) so that BGP's kernel routes (80), which stand
// aside for any route that is not theirs, never fight the overlay's.
package overlay
