package calc

import (
	"net/netip"
	"slices"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
)

// wepExtras resolves a workload endpoint's floating IPs (spec.ipNATs) and
// allowSpoofedSourcePrefixes. Entries that do not parse are reported and
// left out (validation refuses them before they reach the datastore); a
// floating IP whose internal address is not one of the endpoint's is left
// out too, since the DNAT would send traffic somewhere else.
//
// As in Calico, floating IPs are programmed only where FelixConfiguration
// floatingIPs is Enabled (default Disabled), or for OpenStack workloads;
// otherwise they are reported and left out.
func (g *Graph) wepExtras(e *entity) ([]hoststate.IPNAT, []netip.Prefix) {
	var nats []hoststate.IPNAT
	if len(e.wep.Spec.IPNATs) > 0 && !g.floatingIPsEnabled() && e.orch != orchestratorOpenStack {
		g.log.Warn("workload endpoint has ipNATs but FelixConfiguration floatingIPs is not Enabled; its floating IPs are not programmed",
			"workloadEndpoint", e.key.String())
	} else {
		nats = g.ipNATs(e)
	}
	var spoof []netip.Prefix
	for _, s := range e.wep.Spec.AllowSpoofedSourcePrefixes {
		p, ok := parseAddrOrPrefix(s)
		if !ok {
			g.log.Error("ignoring an invalid allowSpoofedSourcePrefixes entry", "workloadEndpoint", e.key.String(), "prefix", s)
			continue
		}
		spoof = append(spoof, p.Masked())
	}
	return nats, spoof
}

// orchestratorOpenStack is the orchestrator whose floating IPs Calico
// always programs.
const orchestratorOpenStack = "openstack"

// floatingIPsEnabled merges FelixConfiguration floatingIPs: the node's
// object wins over "default"; unset is Disabled.
func (g *Graph) floatingIPsEnabled() bool {
	on := false
	for _, fc := range []*api.FelixConfiguration{g.felixDefault, g.felixNode} {
		if fc != nil && fc.Spec.FloatingIPs != nil {
			on = *fc.Spec.FloatingIPs == "Enabled"
		}
	}
	return on
}

func (g *Graph) ipNATs(e *entity) []hoststate.IPNAT {
	var nats []hoststate.IPNAT
	for _, n := range e.wep.Spec.IPNATs {
		in, err1 := netip.ParseAddr(n.InternalIP)
		ex, err2 := netip.ParseAddr(n.ExternalIP)
		in, ex = in.Unmap(), ex.Unmap()
		ok := err1 == nil && err2 == nil && in.Is4() == ex.Is4() &&
			slices.ContainsFunc(e.nets, func(p netip.Prefix) bool { return p.Contains(in) })
		if !ok {
			g.log.Error("ignoring an invalid ipNATs entry", "workloadEndpoint", e.key.String(),
				"internalIP", n.InternalIP, "externalIP", n.ExternalIP)
			continue
		}
		nats = append(nats, hoststate.IPNAT{Internal: in, External: ex})
	}
	return nats
}
