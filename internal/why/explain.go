package why

import (
	"fmt"
	"net/netip"

	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/verdict"
)

// Query is the question: a packet from Src to Dst.
type Query struct {
	Src, Dst string
	// Protocol: an IP protocol number; ICMP (1) is ICMPv6 (58) between
	// IPv6 addresses. Zero means TCP.
	Protocol uint8
	SrcPort  uint16 // source port for protocols with ports
	DstPort  uint16 // destination port for protocols with ports
	// Family 4 or 6 picks the address family when both ends have both;
	// 0 prefers IPv4.
	Family int
}

// Result is the answer.
type Result struct {
	Src     Endpoint       `json:"source"`
	Dst     Endpoint       `json:"destination"`
	Packet  verdict.Packet `json:"packet"`
	Egress  *verdict.Trace `json:"egress,omitempty"`  // at the source's host; nil for a plain address
	Ingress *verdict.Trace `json:"ingress,omitempty"` // at the destination's host; nil for a plain address
	// Verdict is Allow when both directions allow.
	Verdict hoststate.Action `json:"verdict"`
}

// Explain answers q over the snapshot.
func (s *Snapshot) Explain(q Query) (*Result, error) {
	src, err := s.Resolve(q.Src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dst, err := s.Resolve(q.Dst)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	sa, da, err := pickAddrs(src.Addrs, dst.Addrs, q.Family)
	if err != nil {
		return nil, err
	}
	p := verdict.Packet{Src: sa, Dst: da, Protocol: q.Protocol, SrcPort: q.SrcPort, DstPort: q.DstPort}
	if p.Protocol == 0 {
		p.Protocol = 6
	}
	if sa.Is6() && p.Protocol == 1 {
		p.Protocol = 58
	}
	switch p.Protocol {
	case 1:
		p.ICMPType = 8 // echo request, what ping sends
	case 58:
		p.ICMPType = 128
	}
	if !hasPortsProto(p.Protocol) {
		p.SrcPort, p.DstPort = 0, 0
	}
	r := &Result{Src: src, Dst: dst, Packet: p, Verdict: hoststate.Allow}
	hosts := map[string]*verdict.Host{}
	host := func(node string) *verdict.Host {
		if hosts[node] == nil {
			hosts[node] = s.Host(node)
		}
		return hosts[node]
	}
	trace := func(e, other Endpoint, dir verdict.Direction) (*verdict.Trace, error) {
		h := host(e.Node)
		var t verdict.Trace
		var err error
		// Between a host and its own workloads the base chains decide
		// part of the way (see verdict.HostEndpointIn/Out).
		sameHostWorkload := other.Kind == "WorkloadEndpoint" && other.Node == e.Node
		switch {
		case e.Kind == "WorkloadEndpoint":
			t, err = h.Workload(hoststate.EndpointID(e.Namespace+"/"+e.Name), dir, p)
		case e.Kind == "HostEndpoint" && dir == verdict.Ingress:
			t, err = h.HostEndpointIn(hoststate.EndpointID(e.Name), p, sameHostWorkload)
		case e.Kind == "HostEndpoint":
			t, err = h.HostEndpointOut(hoststate.EndpointID(e.Name), p, sameHostWorkload)
		default:
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s (is its node name right?): %w", e, err)
		}
		return &t, nil
	}
	if r.Egress, err = trace(src, dst, verdict.Egress); err != nil {
		return nil, err
	}
	if r.Ingress, err = trace(dst, src, verdict.Ingress); err != nil {
		return nil, err
	}
	for _, t := range []*verdict.Trace{r.Egress, r.Ingress} {
		if t != nil && t.Verdict != hoststate.Allow {
			r.Verdict = hoststate.Deny
		}
	}
	return r, nil
}

func hasPortsProto(p uint8) bool { return p == 6 || p == 17 || p == 132 || p == 136 }

// pickAddrs picks one address of each side of one family.
func pickAddrs(src, dst []netip.Addr, fam int) (netip.Addr, netip.Addr, error) {
	first := func(as []netip.Addr, v4 bool) (netip.Addr, bool) {
		for _, a := range as {
			if a.Unmap().Is4() == v4 {
				return a.Unmap(), true
			}
		}
		return netip.Addr{}, false
	}
	fams := []bool{true, false}
	switch fam {
	case 4:
		fams = []bool{true}
	case 6:
		fams = []bool{false}
	}
	for _, v4 := range fams {
		s, ok1 := first(src, v4)
		d, ok2 := first(dst, v4)
		if ok1 && ok2 {
			return s, d, nil
		}
	}
	return netip.Addr{}, netip.Addr{}, fmt.Errorf("source %v and destination %v have no address of a common family", src, dst)
}
