package verdict

import (
	"fmt"
	"net/netip"

	"github.com/servalnet/serval/internal/hoststate"
)

// StepBase is a fixed rule of the base chains that decided.
const StepBase StepKind = "base"

// failsafe reports whether p hits a failsafe port: inbound ports match
// the destination port and, when set, the source net; outbound ones the
// destination port and net (as the dataplane's failsafeRules render them).
func failsafe(pps []hoststate.ProtoPort, p Packet, out bool) (hoststate.ProtoPort, bool) {
	for _, pp := range pps {
		if pp.Protocol != p.Protocol || pp.Port != p.DstPort || !hasPorts(p.Protocol) {
			continue
		}
		if pp.Net.IsValid() {
			a := p.Src
			if out {
				a = p.Dst
			}
			if !inPrefixes(a, []netip.Prefix{pp.Net}) {
				continue
			}
		}
		return pp, true
	}
	return hoststate.ProtoPort{}, false
}

// HostEndpointIn traces p arriving at the host through host endpoint id
// (the input chain): failsafe inbound ports are accepted first, then the
// endpoint's normal policy. fromLocalWorkload says the packet comes from
// a workload of this host, which DefaultEndpointToHostAction decides
// first: Drop (the default) drops, Accept accepts, Return goes on.
func (h *Host) HostEndpointIn(id hoststate.EndpointID, p Packet, fromLocalWorkload bool) (Trace, error) {
	if _, ok := h.HostEPs[id]; !ok {
		return Trace{}, fmt.Errorf("host endpoint %s is not local to this host", id)
	}
	t := Trace{Endpoint: id, Direction: Ingress}
	if fromLocalWorkload {
		switch h.Config.DefaultEndpointToHostAction {
		case "Accept":
			t.Steps = append(t.Steps, Step{Kind: StepBase, Action: hoststate.Allow, Note: "workload to its own host: DefaultEndpointToHostAction Accept"})
			t.Verdict = hoststate.Allow
			return t, nil
		case "Return":
		default:
			t.Steps = append(t.Steps, Step{Kind: StepBase, Action: hoststate.Deny, Note: "workload to its own host: DefaultEndpointToHostAction Drop"})
			t.Verdict = hoststate.Deny
			return t, nil
		}
	}
	if pp, ok := failsafe(h.Config.FailsafeInboundHostPorts, p, false); ok {
		t.Steps = append(t.Steps, Step{Kind: StepBase, Action: hoststate.Allow, Note: fmt.Sprintf("failsafe inbound port %d/%d", pp.Protocol, pp.Port)})
		t.Verdict = hoststate.Allow
		return t, nil
	}
	return h.HostEndpoint(id, Ingress, p)
}

// HostEndpointOut traces p leaving the host through host endpoint id (the
// output chain). Traffic to a local workload is decided by the workload's
// ingress policy alone; failsafe outbound ports are accepted first.
func (h *Host) HostEndpointOut(id hoststate.EndpointID, p Packet, toLocalWorkload bool) (Trace, error) {
	if _, ok := h.HostEPs[id]; !ok {
		return Trace{}, fmt.Errorf("host endpoint %s is not local to this host", id)
	}
	t := Trace{Endpoint: id, Direction: Egress}
	if toLocalWorkload {
		t.Steps = append(t.Steps, Step{Kind: StepBase, Action: hoststate.Allow, Note: "host to its own workload: host endpoint policy does not apply, the workload's ingress decides"})
		t.Verdict = hoststate.Allow
		return t, nil
	}
	if pp, ok := failsafe(h.Config.FailsafeOutboundHostPorts, p, true); ok {
		t.Steps = append(t.Steps, Step{Kind: StepBase, Action: hoststate.Allow, Note: fmt.Sprintf("failsafe outbound port %d/%d", pp.Protocol, pp.Port)})
		t.Verdict = hoststate.Allow
		return t, nil
	}
	return h.HostEndpoint(id, Egress, p)
}
