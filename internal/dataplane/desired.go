package dataplane

import (
	"maps"
	"slices"

	"github.com/servalnet/serval/internal/hoststate"
)

// --- the desired table: its chains and sets, what owns them, who uses
// which set, policy and profile (so a change re-renders its users) ---

func (d *Dataplane) markUsersOfSet(id string) {
	for u := range d.setUsers[id] {
		switch u[:2] {
		case "p:":
			d.dirtyPolicies[u[2:]] = true
		case "r:":
			d.dirtyProfiles[u[2:]] = true
		}
	}
}

func (d *Dataplane) markUsers(users map[string]bool) {
	for u := range users {
		switch u[:2] {
		case "w:":
			d.dirtyWEPs[hoststate.EndpointID(u[2:])] = true
		case "h:":
			d.dirtyHEPs[hoststate.EndpointID(u[2:])] = true
		}
	}
}

func (d *Dataplane) putChain(c *chain) {
	hs := hashRules(c.Name, c.Base, c.Rules)
	if old := d.hashes[c.Name]; old != nil && slices.Equal(old, hs) && d.chains[c.Name] != nil {
		d.chains[c.Name] = c // same rules, so the same sets
		return
	}
	d.countSetRefs(c, +1)
	if old := d.chains[c.Name]; old != nil {
		d.countSetRefs(old, -1)
	}
	d.chains[c.Name] = c
	d.hashes[c.Name] = hs
	d.dirtyChains[c.Name] = true
}

func (d *Dataplane) dropChain(name string) {
	if old, ok := d.chains[name]; ok {
		d.countSetRefs(old, -1)
		delete(d.chains, name)
		delete(d.hashes, name)
		d.dirtyChains[name] = true
	}
}

// countSetRefs counts the sets a chain's rules test, once per rule.
func (d *Dataplane) countSetRefs(c *chain, delta int) {
	for _, r := range c.Rules {
		for _, st := range r.Stmts {
			m, ok := st.(mSet)
			if !ok {
				continue
			}
			n := d.setRefs[m.Set] + delta
			if n > 0 {
				d.setRefs[m.Set] = n
			} else {
				delete(d.setRefs, m.Set)
			}
			if (n > 0) != (n-delta > 0) {
				d.refsChanged[m.Set] = true
			}
		}
	}
}

// putIPSet puts a rendered half of an IP set in the desired table if a
// chain tests it, and takes it out otherwise.
func (d *Dataplane) putIPSet(s *set) {
	if d.setRefs[s.Name] > 0 {
		d.putSet(s)
	} else {
		d.dropSet(s.Name)
	}
}

// renderSetRefChanges brings in the IP sets chains began to test in this
// render, and takes out those they stopped testing.
func (d *Dataplane) renderSetRefChanges() {
	for name := range d.refsChanged {
		id, ok := d.setNameID[name]
		st := d.ipsets[id]
		if !ok || st == nil {
			continue // not an IP set, or one already gone
		}
		for _, s := range renderIPSet(hoststate.IPSet{ID: id, Type: st.typ}, st.all()) {
			if s.Name == name {
				d.putIPSet(s)
			}
		}
	}
	clear(d.refsChanged)
}

func (d *Dataplane) putSet(s *set) {
	if old := d.sets[s.Name]; old != nil && old.Kind == s.Kind && maps.Equal(old.Elems, s.Elems) {
		return
	}
	d.sets[s.Name] = s
	d.dirtySets[s.Name] = true
}

func (d *Dataplane) dropSet(name string) {
	if _, ok := d.sets[name]; ok {
		delete(d.sets, name)
		d.dirtySets[name] = true
	}
}

// setObjChains replaces the chains an object owns.
func (d *Dataplane) setObjChains(key string, cs []*chain) {
	keep := map[string]bool{}
	for _, c := range cs {
		keep[c.Name] = true
		d.putChain(c)
	}
	for _, n := range d.objChains[key] {
		if !keep[n] {
			d.dropChain(n)
		}
	}
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if len(names) == 0 {
		delete(d.objChains, key)
	} else {
		d.objChains[key] = names
	}
}

// setObjMapElems replaces the map elements an endpoint owns.
func (d *Dataplane) setObjMapElems(key string, want map[string]elem) {
	for m, e := range d.objMapElems[key] {
		if w, ok := want[m]; !ok || w != e {
			delete(d.elemsToChange(m), e)
			d.dirtySets[m] = true
		}
	}
	for m, e := range want {
		if _, ok := d.sets[m].Elems[e]; !ok {
			d.elemsToChange(m)[e] = struct{}{}
			d.dirtySets[m] = true
		}
	}
	if len(want) == 0 {
		delete(d.objMapElems, key)
	} else {
		d.objMapElems[key] = want
	}
}

func (d *Dataplane) registerSetUsers(user string, ids []string) {
	for _, id := range d.userSets[user] {
		delete(d.setUsers[id], user)
		if len(d.setUsers[id]) == 0 {
			delete(d.setUsers, id)
		}
	}
	delete(d.userSets, user)
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	d.userSets[user] = ids
	for _, id := range ids {
		if d.setUsers[id] == nil {
			d.setUsers[id] = map[string]bool{}
		}
		d.setUsers[id][user] = true
	}
}

func ruleSetIDs(rs []hoststate.Rule) []string {
	var out []string
	for _, r := range rs {
		for _, l := range [][]string{r.SrcIPSetIDs, r.NotSrcIPSetIDs, r.DstIPSetIDs, r.NotDstIPSetIDs,
			r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs} {
			out = append(out, l...)
		}
	}
	return out
}

// registerEPRefs records which policies and profiles an endpoint refers
// to, known or not, so that it is rendered again when they come or go.
func (d *Dataplane) registerEPRefs(key string, tiers [][]hoststate.TierPolicies, profiles []string) {
	for _, r := range d.epRefs[key] {
		idx := d.polUsers
		if r[:2] == "r:" {
			idx = d.profUsers
		}
		delete(idx[r[2:]], key)
		if len(idx[r[2:]]) == 0 {
			delete(idx, r[2:])
		}
	}
	delete(d.epRefs, key)
	var refs []string
	add := func(idx map[string]map[string]bool, k, ref string) {
		if idx[k] == nil {
			idx[k] = map[string]bool{}
		}
		idx[k][key] = true
		refs = append(refs, ref)
	}
	for _, ts := range tiers {
		for _, t := range ts {
			for _, p := range append(slices.Clone(t.IngressPolicies), t.EgressPolicies...) {
				k := policyKey(p)
				add(d.polUsers, k, "p:"+k)
			}
		}
	}
	for _, p := range profiles {
		add(d.profUsers, p, "r:"+p)
	}
	if len(refs) > 0 {
		d.epRefs[key] = refs
	}
}
