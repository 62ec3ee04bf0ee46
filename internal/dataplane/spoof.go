package dataplane

import (
	"slices"

	"github.com/servalnet/serval/internal/hoststate"
)

// withSpoofedPrefixes adds a workload's allowSpoofedSourcePrefixes to the
// source addresses its anti-spoofing rules accept, when the configuration
// allows source spoofing at all (FelixConfiguration workloadSourceSpoofing:
// Any, as in Calico; with Disabled, the default, the prefixes are ignored
// and the workload may send from its own addresses only).
func withSpoofedPrefixes(ep hoststate.WorkloadEndpoint, allow bool) hoststate.WorkloadEndpoint {
	if !allow || len(ep.AllowSpoofedSourcePrefixes) == 0 {
		return ep
	}
	ep.IPv4Nets = slices.Clone(ep.IPv4Nets)
	ep.IPv6Nets = slices.Clone(ep.IPv6Nets)
	for _, p := range ep.AllowSpoofedSourcePrefixes {
		if !p.IsValid() {
			continue
		}
		if famOf(p) == v4 {
			ep.IPv4Nets = append(ep.IPv4Nets, p.Masked())
		} else {
			ep.IPv6Nets = append(ep.IPv6Nets, p.Masked())
		}
	}
	return ep
}

// warnSpoofIgnored says, once per endpoint and setting, that an endpoint's
// allowSpoofedSourcePrefixes have no effect because the configuration does
// not allow source spoofing.
func (d *Dataplane) warnSpoofIgnored(ep hoststate.WorkloadEndpoint) {
	if d.cfg.AllowSourceSpoofing || len(ep.AllowSpoofedSourcePrefixes) == 0 {
		return
	}
	d.log.Warn("workload endpoint has allowSpoofedSourcePrefixes but FelixConfiguration workloadSourceSpoofing is not Any; its anti-spoofing allows only its own addresses",
		"endpoint", ep.ID, "prefixes", ep.AllowSpoofedSourcePrefixes)
}
