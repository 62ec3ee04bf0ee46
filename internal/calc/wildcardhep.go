package calc

import (
	"maps"
	"slices"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
)

// All-interfaces host endpoints (interfaceName "*"). Calico merges every
// such endpoint of a host into one "all interfaces" endpoint: the policies
// in effect are the union of those selecting any of them, ordered as for
// any endpoint (tier order, policy order, name), and so are the profiles.
// Each "*" endpoint is therefore reported with the merged policies and
// profiles, and the dataplane programs one of them (the first by name):
// all are the same. A change to any of them re-renders all of them.

func isWildcardHEP(e *entity) bool {
	return e != nil && e.hep != nil && e.hep.Spec.InterfaceName == "*"
}

// widenWildcardDirt adds every "*" host endpoint to keys when one of them
// (present, or reported before and now gone) is among keys.
func (g *Graph) widenWildcardDirt(keys []api.Key) []api.Key {
	hit := false
	for _, k := range keys {
		if isWildcardHEP(g.local[k]) {
			hit = true
			break
		}
		if old := g.sentHEPs[k]; old != nil && old.InterfaceName == "*" {
			hit = true
			break
		}
	}
	if !hit {
		return keys
	}
	set := map[api.Key]bool{}
	for _, k := range keys {
		set[k] = true
	}
	for k, e := range g.local {
		if isWildcardHEP(e) {
			set[k] = true
		}
	}
	return slices.SortedFunc(maps.Keys(set), compareKeys)
}

// wildcardPolicies returns the active policies (those keep accepts) of
// every "*" host endpoint.
func (g *Graph) wildcardPolicies(keep func(*policy) bool) []*policy {
	seen := map[*policy]bool{}
	var out []*policy
	for _, k := range slices.SortedFunc(maps.Keys(g.local), compareKeys) {
		e := g.local[k]
		if !isWildcardHEP(e) {
			continue
		}
		for _, p := range activePolicies(e, keep) {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func (g *Graph) wildcardProfiles() []string {
	var out []string
	for _, k := range slices.SortedFunc(maps.Keys(g.local), compareKeys) {
		if e := g.local[k]; isWildcardHEP(e) {
			for _, p := range e.profiles {
				if !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// renderWildcardHEP renders a "*" host endpoint as the merged endpoint.
func (g *Graph) renderWildcardHEP(e *entity) hoststate.HostEndpoint {
	pols := g.wildcardPolicies
	return hoststate.HostEndpoint{
		ID:             hoststate.EndpointID(e.key.Name),
		InterfaceName:  "*",
		Tiers:          g.tiersFor(pols(func(p *policy) bool { return !p.untracked && !p.preDNAT })),
		UntrackedTiers: g.tiersFor(pols(func(p *policy) bool { return p.untracked })),
		PreDNATTiers:   g.tiersFor(pols(func(p *policy) bool { return p.preDNAT })),
		ForwardTiers:   g.tiersFor(pols(func(p *policy) bool { return p.forward && !p.untracked && !p.preDNAT })),
		ProfileIDs:     g.wildcardProfiles(),
	}
}
