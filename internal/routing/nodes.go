package routing

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"

	"github.com/servalnet/serval/internal/api"
)

type nodeInfo struct {
	name      string
	labels    map[string]string
	asn       uint32
	v4, v6    netip.Addr
	clusterID string
}

func configOf(cfgs []*api.BGPConfiguration, name string) *api.BGPConfigurationSpec {
	for _, c := range cfgs {
		if c != nil && c.Name == name {
			return &c.Spec
		}
	}
	return nil
}

func parseNode(n *api.Node, clusterAS uint32) (*nodeInfo, error) {
	b := n.Spec.BGP
	ni := &nodeInfo{name: n.Name, labels: n.Labels, asn: clusterAS, clusterID: b.RouteReflectorClusterID}
	if b.ASNumber != nil {
		v, ok := b.ASNumber.Uint32()
		if !ok {
			return nil, fmt.Errorf("spec.bgp.asNumber %q is invalid", b.ASNumber.String())
		}
		ni.asn = v
	}
	for _, f := range []struct {
		field, text string
		dst         *netip.Addr
		v4          bool
	}{{"ipv4Address", b.IPv4Address, &ni.v4, true}, {"ipv6Address", b.IPv6Address, &ni.v6, false}} {
		if f.text == "" {
			continue
		}
		a, err := parseHostAddr(f.text)
		if err != nil || a.Is4() != f.v4 {
			return nil, fmt.Errorf("spec.bgp.%s %q is not an IPv%s address", f.field, f.text, map[bool]string{true: "4", false: "6"}[f.v4])
		}
		*f.dst = a
	}
	if ni.clusterID != "" {
		if a, err := netip.ParseAddr(ni.clusterID); err != nil || !a.Is4() {
			return nil, fmt.Errorf("spec.bgp.routeReflectorClusterID %q is not an IPv4 address", ni.clusterID)
		}
	}
	return ni, nil
}

// parseHostAddr accepts "10.0.0.5/24" (the Node form) or a bare address.
func parseHostAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, err
		}
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}

// hashRouterID gives an IPv6-only node a stable 32-bit router ID. It is
// taken from 240.0.0.0/4 (reserved), so it never equals a real IPv4 node
// address.
func hashRouterID(name string) netip.Addr {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{0xf0 | byte(v>>24)&0x0f, byte(v >> 16), byte(v >> 8), byte(v)})
}
