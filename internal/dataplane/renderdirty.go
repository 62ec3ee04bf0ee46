package dataplane

import (
	"maps"
	"slices"

	"github.com/servalnet/serval/internal/hoststate"
)

// --- rendering into the desired table: whatever is dirty, in one pass ---

func (d *Dataplane) knownSet(id string) bool { _, ok := d.ipsets[id]; return ok }

func (d *Dataplane) policyKnown(id hoststate.PolicyID) bool {
	_, ok := d.policies[policyKey(id)]
	return ok
}

func (d *Dataplane) profileKnown(name string) bool { _, ok := d.profiles[name]; return ok }

func (d *Dataplane) render() {
	if d.allDirty {
		for id := range d.ipsets {
			d.dirtyIPSets[id] = true
		}
		for k := range d.policies {
			d.dirtyPolicies[k] = true
		}
		for k := range d.profiles {
			d.dirtyProfiles[k] = true
		}
		for k := range d.weps {
			d.dirtyWEPs[k] = true
		}
		for k := range d.heps {
			d.dirtyHEPs[k] = true
		}
		d.renderPoolSets()
		d.allDirty = false
	}
	d.resolveHostEndpoints()
	for id := range d.dirtyIPSets {
		d.markRunsOfSet(id)
		st := d.ipsets[id]
		if st == nil {
			d.dropSet(ipSetName(id, v4))
			d.dropSet(ipSetName(id, v6))
			continue
		}
		if d.setRefs[ipSetName(id, v4)] == 0 && d.setRefs[ipSetName(id, v6)] == 0 {
			// No chain tests it (yet): nothing to render.
			d.dropSet(ipSetName(id, v4))
			d.dropSet(ipSetName(id, v6))
			continue
		}
		for _, s := range renderIPSet(hoststate.IPSet{ID: id, Type: st.typ}, st.all()) {
			d.putIPSet(s)
		}
	}
	clear(d.dirtyIPSets)
	logAct := logAction(d.cfg)
	for k := range d.dirtyPolicies {
		p, ok := d.policies[k]
		user := "p:" + k
		if d.updateShape(k, p, ok) {
			d.markUsers(d.polUsers[k])
		}
		for r := range d.rb.ofPolicy[k] {
			d.markRunPolicy(r, k)
		}
		d.registerSetUsers(user, nil)
		if !ok {
			d.setObjChains(user, nil)
			continue
		}
		d.registerSetUsers(user, append(ruleSetIDs(p.InboundRules), ruleSetIDs(p.OutboundRules)...))
		// A direction that compiles is always part of a run and never
		// jumped to: its chain would be dead weight in the kernel.
		var cs []*chain
		if !d.shape(p.ID, true).Compiles {
			cs = append(cs, &chain{Name: policyChainName(p.ID, true), Rules: d.applyDenyAction(renderRules(p.InboundRules, logAct, d.knownSet), !p.Untracked && !p.PreDNAT)})
		}
		if !d.shape(p.ID, false).Compiles {
			cs = append(cs, &chain{Name: policyChainName(p.ID, false), Rules: d.applyDenyAction(renderRules(p.OutboundRules, logAct, d.knownSet), !p.Untracked && !p.PreDNAT)})
		}
		d.setObjChains(user, cs)
	}
	clear(d.dirtyPolicies)
	for k := range d.dirtyProfiles {
		p, ok := d.profiles[k]
		user := "r:" + k
		d.registerSetUsers(user, nil)
		if !ok {
			d.setObjChains(user, nil)
			continue
		}
		d.registerSetUsers(user, append(ruleSetIDs(p.InboundRules), ruleSetIDs(p.OutboundRules)...))
		d.setObjChains(user, []*chain{
			{Name: profileChainName(k, true), Rules: d.applyDenyAction(renderRules(p.InboundRules, logAct, d.knownSet), true)},
			{Name: profileChainName(k, false), Rules: d.applyDenyAction(renderRules(p.OutboundRules, logAct, d.knownSet), true)},
		})
	}
	clear(d.dirtyProfiles)
	for id := range d.dirtyWEPs {
		d.renderWEP(id)
	}
	clear(d.dirtyWEPs)
	for id := range d.dirtyHEPs {
		d.renderHEP(id)
	}
	clear(d.dirtyHEPs)
	d.renderRuns()
	if d.ifaces != nil {
		d.ifaces.setPrefixes(prefixesOf(d.cfg))
		d.ifaces.noForwarding = d.cfg.IPForwardingDisabled
	}
	if d.routes != nil {
		d.routes.prefixes = prefixesOf(d.cfg)
	}
	d.renderBaseChains()
	d.renderSetRefChanges()
}

func (d *Dataplane) renderPoolSets() {
	for _, s := range renderPools(d.pools) {
		d.putSet(s)
	}
}

func (d *Dataplane) renderWEP(id hoststate.EndpointID) {
	key := "w:" + string(id)
	ep, ok := d.weps[id]
	if !ok {
		d.registerEPRefs(key, nil, nil)
		d.setObjChains(key, nil)
		d.setObjMapElems(key, nil)
		d.setEPRuns(key)
		if d.routes != nil {
			d.routes.setWorkload(key, nil)
		}
		if d.ifaces != nil {
			d.ifaces.setWorkload(key, "")
		}
		return
	}
	d.registerEPRefs(key, [][]hoststate.TierPolicies{ep.Tiers}, ep.ProfileIDs)
	comp := d.compiler()
	defer d.setEPRuns(key)
	from := &chain{Name: fromWorkloadChainName(id)}
	from.Rules = append(from.Rules, antiSpoof(ep, d.cfg.AllowSourceSpoofing)...)
	d.warnSpoofIgnored(ep)
	from.Rules = append(from.Rules, clearMarks())
	from.Rules = append(from.Rules, renderTiers(ep.Tiers, tierOpts{endOfTierDrop: true}, d.policyKnown, comp)...)
	from.Rules = append(from.Rules, renderProfiles(ep.ProfileIDs, false, d.profileKnown)...)
	from.Rules = append(from.Rules, rule{Stmts: []stmt{vDrop}, Comment: "no policy or profile allowed"})
	to := &chain{Name: toWorkloadChainName(id)}
	to.Rules = append(to.Rules, clearMarks())
	to.Rules = append(to.Rules, renderTiers(ep.Tiers, tierOpts{inbound: true, endOfTierDrop: true}, d.policyKnown, comp)...)
	to.Rules = append(to.Rules, renderProfiles(ep.ProfileIDs, true, d.profileKnown)...)
	to.Rules = append(to.Rules, rule{Stmts: []stmt{vDrop}, Comment: "no policy or profile allowed"})
	from.Rules, to.Rules = d.applyDenyAction(from.Rules, true), d.applyDenyAction(to.Rules, true)
	d.setObjChains(key, []*chain{from, to})
	elems := map[string]elem{}
	if ep.InterfaceName != "" {
		elems[mapWlFrom] = vmapElem(ep.InterfaceName, from.Name)
		elems[mapWlTo] = vmapElem(ep.InterfaceName, to.Name)
	}
	d.setObjMapElems(key, elems)
	if d.routes != nil {
		d.routes.setWorkload(key, &ep)
	}
	if d.ifaces != nil {
		d.ifaces.setWorkload(key, ep.InterfaceName)
	}
}

func (d *Dataplane) renderHEP(id hoststate.EndpointID) {
	key := "h:" + string(id)
	for _, w := range d.wildcard {
		delete(w, key)
	}
	ep, ok := d.heps[id]
	if !ok {
		d.registerEPRefs(key, nil, nil)
		d.setObjChains(key, nil)
		d.setHEPMapElems(key, nil)
		d.setEPRuns(key)
		return
	}
	d.registerEPRefs(key, [][]hoststate.TierPolicies{ep.Tiers, ep.ForwardTiers, ep.PreDNATTiers, ep.UntrackedTiers}, ep.ProfileIDs)
	comp := d.compiler()
	defer d.setEPRuns(key)
	var cs []*chain
	elems := map[string]map[string]elem{} // interface → map → element
	add := func(mapName string, rules []rule) {
		c := &chain{Name: hepChainName(id, mapName), Rules: d.applyDenyAction(rules, mayReject(mapName))}
		cs = append(cs, c)
		if ep.InterfaceName == "*" {
			if d.wildcard[mapName] == nil {
				d.wildcard[mapName] = map[string]string{}
			}
			d.wildcard[mapName][key] = c.Name
		} else {
			for _, n := range d.hepInterfaces(ep) {
				if elems[n] == nil {
					elems[n] = map[string]elem{}
				}
				elems[n][mapName] = vmapElem(n, c.Name)
			}
		}
	}
	normal := func(inbound bool) []rule {
		rs := []rule{clearMarks()}
		rs = append(rs, renderTiers(ep.Tiers, tierOpts{inbound: inbound, endOfTierDrop: true}, d.policyKnown, comp)...)
		rs = append(rs, renderProfiles(ep.ProfileIDs, inbound, d.profileKnown)...)
		return append(rs, rule{Stmts: []stmt{vDrop}, Comment: "no policy or profile allowed"})
	}
	add(mapHepIn, normal(true))
	add(mapHepOut, normal(false))
	for _, f := range []struct {
		mapName string
		tiers   []hoststate.TierPolicies
		inbound bool
		drop    bool
	}{
		{mapHepFwdIn, ep.ForwardTiers, true, true}, {mapHepFwdOut, ep.ForwardTiers, false, true},
		{mapHepPreDNAT, ep.PreDNATTiers, true, false},
		{mapHepRawIn, ep.UntrackedTiers, true, false}, {mapHepRawOut, ep.UntrackedTiers, false, false},
	} {
		// Without policy of the kind, such traffic is not policed by this
		// endpoint (Calico: forwarded traffic is allowed unless
		// applyOnForward policy says otherwise).
		if !hasPolicies(f.tiers, f.inbound) {
			continue
		}
		rs := []rule{clearMarks()}
		rs = append(rs, renderTiers(f.tiers, tierOpts{inbound: f.inbound, endOfTierDrop: f.drop}, d.policyKnown, comp)...)
		if f.drop {
			rs = append(rs, rule{Stmts: []stmt{vDrop}, Comment: "no policy allowed"})
		}
		add(f.mapName, rs)
	}
	d.setObjChains(key, cs)
	d.setHEPMapElems(key, elems)
}

func (d *Dataplane) renderBaseChains() {
	in := baseInputs{cfg: d.cfg, wildcard: map[string]string{}, fips: floatingIPs(d.weps)}
	for _, ep := range d.heps {
		if ep.InterfaceName != "*" {
			in.hepIfaces = append(in.hepIfaces, d.hepInterfaces(ep)...)
		}
	}
	in.hepIfaces = append(in.hepIfaces, d.excludedInterfaces()...)
	for m, w := range d.wildcard {
		// Several "*" host endpoints are one all-interfaces endpoint:
		// calc gives each the merged policies (the union), so the first
		// by name stands for all.
		keys := slices.Sorted(maps.Keys(w))
		if len(keys) > 0 {
			in.wildcard[m] = w[keys[0]]
		}
	}
	in.used = map[string]bool{}
	for _, m := range allMaps {
		in.used[m] = in.wildcard[m] != "" || len(d.sets[m].Elems) > 0
	}
	for _, c := range renderBase(in) {
		d.putChain(c)
	}
}
