package dataplane

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/servalnet/serval/internal/hoststate"
)

// --- hoststate.Callbacks: queue and poke ---

var _ hoststate.Callbacks = (*Dataplane)(nil)

func (d *Dataplane) enqueue(f func()) {
	d.mu.Lock()
	d.pending = append(d.pending, f)
	d.mu.Unlock()
	d.Trigger()
}

// Trigger asks Run for an Apply soon; calls made while one is pending
// merge into it.
func (d *Dataplane) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

func (d *Dataplane) OnIPSetUpdate(s hoststate.IPSet) {
	s.Members = slices.Clone(s.Members)
	d.enqueue(func() {
		st := newIPSetState(s.Type, len(s.Members))
		for _, m := range s.Members {
			if !st.has(m) {
				st.add(m)
			}
		}
		old, known := d.ipsets[s.ID]
		if !known {
			d.markUsersOfSet(s.ID)
			d.setNameID[ipSetName(s.ID, v4)], d.setNameID[ipSetName(s.ID, v6)] = s.ID, s.ID
		}
		d.ipsets[s.ID] = st
		d.dirtyIPSets[s.ID] = true
		// Compiled runs follow the members' changes, whole set or delta.
		var added, removed []hoststate.IPSetMember
		for m := range st.all() {
			if !known {
				added = append(added, m)
			} else if !old.has(m) {
				added = append(added, m)
			}
		}
		if known {
			for m := range old.all() {
				if !st.has(m) {
					removed = append(removed, m)
				}
			}
		}
		d.runMembersChanged(s.ID, added, removed)
	})
}

func (d *Dataplane) OnIPSetDelta(id string, added, removed []hoststate.IPSetMember) {
	added, removed = slices.Clone(added), slices.Clone(removed)
	d.enqueue(func() {
		st := d.ipsets[id]
		if st == nil {
			d.log.Warn("delta for unknown IP set; ignored", "set", id)
			return
		}
		// Only what really changes goes on to the compiled runs, whose
		// counts must never see a member twice.
		var gone, came []hoststate.IPSetMember
		for _, m := range removed {
			if st.has(m) {
				st.remove(m)
				gone = append(gone, m)
			}
		}
		for _, m := range added {
			if !st.has(m) {
				st.add(m)
				came = append(came, m)
			}
		}
		d.dirtyIPSets[id] = true
		d.runMembersChanged(id, came, gone)
	})
}

func (d *Dataplane) OnIPSetRemove(id string) {
	d.enqueue(func() {
		if st, ok := d.ipsets[id]; ok {
			delete(d.ipsets, id)
			delete(d.setNameID, ipSetName(id, v4))
			delete(d.setNameID, ipSetName(id, v6))
			d.markUsersOfSet(id)
			d.dirtyIPSets[id] = true
			var gone []hoststate.IPSetMember
			for m := range st.all() {
				gone = append(gone, m)
			}
			d.runMembersChanged(id, nil, gone)
		}
	})
}

func (d *Dataplane) OnPolicyUpdate(p hoststate.Policy) {
	d.enqueue(func() {
		k := policyKey(p.ID)
		if _, ok := d.policies[k]; !ok {
			d.markUsers(d.polUsers[k])
		}
		d.policies[k] = p
		d.dirtyPolicies[k] = true
	})
}

func (d *Dataplane) OnPolicyRemove(id hoststate.PolicyID) {
	d.enqueue(func() {
		k := policyKey(id)
		delete(d.policies, k)
		d.markUsers(d.polUsers[k])
		d.dirtyPolicies[k] = true
	})
}

func (d *Dataplane) OnProfileUpdate(p hoststate.Profile) {
	d.enqueue(func() {
		if _, ok := d.profiles[p.Name]; !ok {
			d.markUsers(d.profUsers[p.Name])
		}
		d.profiles[p.Name] = p
		d.dirtyProfiles[p.Name] = true
	})
}

func (d *Dataplane) OnProfileRemove(name string) {
	d.enqueue(func() {
		delete(d.profiles, name)
		d.markUsers(d.profUsers[name])
		d.dirtyProfiles[name] = true
	})
}

func (d *Dataplane) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) {
	d.enqueue(func() { d.weps[ep.ID] = ep; d.dirtyWEPs[ep.ID] = true })
}

func (d *Dataplane) OnWorkloadEndpointRemove(id hoststate.EndpointID) {
	d.enqueue(func() { delete(d.weps, id); d.dirtyWEPs[id] = true })
}

func (d *Dataplane) OnHostEndpointUpdate(ep hoststate.HostEndpoint) {
	d.enqueue(func() { d.heps[ep.ID] = ep; d.dirtyHEPs[ep.ID] = true; d.hostIfacesStale = true })
}

func (d *Dataplane) OnHostEndpointRemove(id hoststate.EndpointID) {
	d.enqueue(func() { delete(d.heps, id); d.dirtyHEPs[id] = true; d.hostIfacesStale = true })
}

func (d *Dataplane) OnIPPoolUpdate(name string, pool hoststate.IPPool) {
	d.enqueue(func() { d.pools[name] = pool; d.renderPoolSets() })
}

func (d *Dataplane) OnIPPoolRemove(name string) {
	d.enqueue(func() { delete(d.pools, name); d.renderPoolSets() })
}

func (d *Dataplane) OnLocalBlockUpdate(cidr netip.Prefix) {
	d.enqueue(func() {
		if d.routes != nil {
			d.routes.setBlock(cidr, true)
		}
	})
}

func (d *Dataplane) OnLocalBlockRemove(cidr netip.Prefix) {
	d.enqueue(func() {
		if d.routes != nil {
			d.routes.setBlock(cidr, false)
		}
	})
}

func (d *Dataplane) OnConfigUpdate(cfg hoststate.Config) {
	d.enqueue(func() { d.cfg = cfg; d.allDirty = true; d.hostIfacesStale = true })
}

func (d *Dataplane) OnInSync() {
	d.enqueue(func() {
		if !d.inSync {
			d.inSync = true
			d.fullDiff = true // deletions held back until now
		}
	})
}

type ipsetState struct {
	typ     hoststate.IPSetType
	members map[memberKey]struct{}
	// ranges counts the members per family (0: IPv4, 1: IPv6) that are
	// more than one address: a set without any is a compiled run's term.
	ranges [2]int
}

func newIPSetState(typ hoststate.IPSetType, n int) *ipsetState {
	return &ipsetState{typ: typ, members: make(map[memberKey]struct{}, n)}
}

func (st *ipsetState) has(m hoststate.IPSetMember) bool {
	_, ok := st.members[packMember(m)]
	return ok
}

// all yields the members.
func (st *ipsetState) all() iter.Seq[hoststate.IPSetMember] {
	return func(yield func(hoststate.IPSetMember) bool) {
		for k := range st.members {
			if !yield(k.member()) {
				return
			}
		}
	}
}

func (st *ipsetState) add(m hoststate.IPSetMember) {
	st.members[packMember(m)] = struct{}{}
	if m.Prefix.IsValid() && !m.Prefix.IsSingleIP() {
		st.ranges[famIndex(famOf(m.Prefix))]++
	}
}

func (st *ipsetState) remove(m hoststate.IPSetMember) {
	delete(st.members, packMember(m))
	if m.Prefix.IsValid() && !m.Prefix.IsSingleIP() {
		st.ranges[famIndex(famOf(m.Prefix))]--
	}
}
