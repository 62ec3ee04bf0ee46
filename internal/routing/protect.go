package routing

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/servalnet/serval/internal/api"
)

// protectedPrefixes are the destinations a learned route must never take
// over on this host: the addresses of its workloads, and its own addresses
// with their subnets (the links its BGP sessions and next hops are on). A
// learned prefix equal to or inside one of them is not programmed: a peer,
// by mistake or not, could otherwise draw away traffic for a local workload
// or for the host's neighbours. Learned prefixes that merely contain one (a
// default route, another host's block holding an address this host
// borrowed) are normal and stay: the kernel prefers the more specific
// local route. The host's blocks are guarded apart (Desired.OwnedBlocks):
// inside them other hosts' borrowed addresses must still be routed.
func protectedPrefixes(me *api.Node, local []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range local {
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if me != nil && me.Spec.BGP != nil {
		for _, s := range []string{me.Spec.BGP.IPv4Address, me.Spec.BGP.IPv6Address} {
			if s == "" {
				continue
			}
			if !strings.Contains(s, "/") {
				s += "/" + map[bool]string{true: "32", false: "128"}[!strings.Contains(s, ":")]
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked(), netip.PrefixFrom(p.Addr().Unmap(), p.Addr().Unmap().BitLen()))
			}
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

// sortedPrefixes returns ps masked, sorted and without duplicates.
func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

// takesOver says whether programming learned prefix p would take over
// what this host must route itself: p lies in a protected prefix, or in
// one of its blocks without being a host route.
func takesOver(p netip.Prefix, protected, blocks []netip.Prefix) bool {
	return inAny(p, protected) || (!p.IsSingleIP() && inAny(p, blocks))
}
