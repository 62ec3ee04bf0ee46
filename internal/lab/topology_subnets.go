package lab

import "net/netip"

// This file holds what hosts on several subnets (behind a static router)
// and dual-stack hosts need: the overlay's lab topologies.

// RouterStatic is the router kind that forwards and speaks no BGP.
const RouterStatic = "static"

// HostGateway is the router's address on h's subnet (invalid without a
// router or when none is on it).
func (t *Topology) HostGateway(h Host) netip.Addr {
	if t.Router == nil {
		return netip.Addr{}
	}
	ha, _ := netip.ParsePrefix(h.Address)
	for _, a := range append([]string{t.Router.Address}, t.Router.Subnets...) {
		if p, err := netip.ParsePrefix(a); err == nil && p.Masked().Contains(ha.Addr()) {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// HostGateway6 is the router's IPv6 address on h's IPv6 subnet (invalid
// without one).
func (t *Topology) HostGateway6(h Host) netip.Addr {
	ha, err := netip.ParsePrefix(h.Address6)
	if t.Router == nil || err != nil {
		return netip.Addr{}
	}
	for _, a := range append([]string{t.Router.Address6}, t.Router.Subnets6...) {
		if p, err := netip.ParsePrefix(a); err == nil && p.Masked().Contains(ha.Addr()) {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// DualStack says whether any host has an IPv6 address.
func (t *Topology) DualStack() bool {
	for _, h := range t.Hosts {
		if h.Address6 != "" {
			return true
		}
	}
	return false
}
