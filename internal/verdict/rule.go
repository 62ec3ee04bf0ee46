package verdict

import (
	"net/netip"
	"slices"

	"github.com/servalnet/serval/internal/hoststate"
)

// Packet is the first packet of a connection. Ports are zero for
// protocols without them; ICMPType and ICMPCode only mean something for
// ICMP and ICMPv6.
type Packet struct {
	Src      netip.Addr `json:"src"`
	Dst      netip.Addr `json:"dst"`
	Protocol uint8      `json:"protocol"`
	SrcPort  uint16     `json:"srcPort,omitempty"`
	DstPort  uint16     `json:"dstPort,omitempty"`
	ICMPType uint8      `json:"icmpType,omitempty"`
	ICMPCode uint8      `json:"icmpCode,omitempty"`
}

func (p Packet) is4() bool { return p.Src.Unmap().Is4() }

func (p Packet) icmpProto() uint8 {
	if p.is4() {
		return 1
	}
	return 58
}

// hasPorts: the transport protocols whose header has ports, the ones a
// rule with ports is restricted to (as the dataplane renders it).
func hasPorts(proto uint8) bool { return proto == 6 || proto == 17 || proto == 132 || proto == 136 }

// Matches reports whether rule r matches packet p on a host with the IP
// sets in sets. It follows the dataplane's ruleMatches exactly.
func Matches(r hoststate.Rule, p Packet, sets map[string]*hoststate.IPSet) bool {
	v4 := p.is4()
	if r.IPVersion == 4 && !v4 || r.IPVersion == 6 && v4 {
		return false
	}
	ports := len(r.SrcPorts)+len(r.NotSrcPorts)+len(r.DstPorts)+len(r.NotDstPorts) > 0
	switch {
	case r.Protocol != nil:
		if *r.Protocol != p.Protocol {
			return false
		}
	case r.ICMPType != nil || r.NotICMPType != nil:
		if p.Protocol != p.icmpProto() {
			return false
		}
	case ports:
		if !hasPorts(p.Protocol) {
			return false
		}
	}
	if r.NotProtocol != nil && *r.NotProtocol == p.Protocol {
		return false
	}
	isICMP := p.Protocol == p.icmpProto()
	if r.ICMPType != nil {
		if !isICMP || p.ICMPType != *r.ICMPType || r.ICMPCode != nil && p.ICMPCode != *r.ICMPCode {
			return false
		}
	}
	if r.NotICMPType != nil {
		// The kernel loads the ICMP header only for ICMP packets.
		if !isICMP || p.ICMPType == *r.NotICMPType && (r.NotICMPCode == nil || p.ICMPCode == *r.NotICMPCode) {
			return false
		}
	}
	for _, side := range []struct {
		a         netip.Addr
		port      uint16
		nets, not []netip.Prefix
		ids, nids []string
		pr, npr   []hoststate.PortRange
		nm, nnm   []string
	}{
		{p.Src, p.SrcPort, r.SrcNets, r.NotSrcNets, r.SrcIPSetIDs, r.NotSrcIPSetIDs, r.SrcPorts, r.NotSrcPorts, r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs},
		{p.Dst, p.DstPort, r.DstNets, r.NotDstNets, r.DstIPSetIDs, r.NotDstIPSetIDs, r.DstPorts, r.NotDstPorts, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs},
	} {
		if len(side.nets) > 0 && !inPrefixes(side.a, side.nets) {
			return false
		}
		if inPrefixes(side.a, side.not) {
			return false
		}
		for _, id := range side.ids {
			if s := sets[id]; s == nil || !inSet(s, side.a, 0, 0) {
				return false
			}
		}
		for _, id := range side.nids {
			if s := sets[id]; s != nil && inSet(s, side.a, 0, 0) {
				return false
			}
		}
		if inRanges(side.port, side.npr) {
			return false
		}
		for _, id := range side.nnm {
			if s := sets[id]; s != nil && inSet(s, side.a, p.Protocol, side.port) {
				return false
			}
		}
		if len(side.pr)+len(side.nm) > 0 {
			ok := inRanges(side.port, side.pr)
			for _, id := range side.nm {
				if s := sets[id]; s != nil && inSet(s, side.a, p.Protocol, side.port) {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	a = a.Unmap()
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.IsValid() && p.Masked().Contains(a) })
}

func inRanges(port uint16, rs []hoststate.PortRange) bool {
	return slices.ContainsFunc(rs, func(r hoststate.PortRange) bool {
		lo, hi := min(r.First, r.Last), max(r.First, r.Last)
		return port >= lo && port <= hi
	})
}

// inSet: an address in an IPSetNets set, or an (address, protocol, port)
// in an IPSetNetPorts set.
func inSet(s *hoststate.IPSet, a netip.Addr, proto uint8, port uint16) bool {
	a = a.Unmap()
	for _, m := range s.Members {
		if s.Type == hoststate.IPSetNetPorts {
			if m.Prefix.IsSingleIP() && m.Prefix.Addr().Unmap() == a && m.Protocol == proto && m.Port == port {
				return true
			}
			continue
		}
		if m.Prefix.IsValid() && m.Prefix.Masked().Contains(a) {
			return true
		}
	}
	return false
}
