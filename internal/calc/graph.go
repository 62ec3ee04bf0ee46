package calc

import (
	"cmp"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// Graph is the calculation graph of one host. It implements
// datastore.SyncerCallbacks. It is not safe for concurrent use: the
// syncer's goroutine calls it, and it calls its hoststate.Callbacks from
// that same goroutine.
type Graph struct {
	hostname string
	cb       hoststate.Callbacks
	log      *slog.Logger

	inSync     bool
	sentInSync bool

	// The model: everything the datastore holds that matters here.
	entities map[api.Key]*entity // endpoints of every host, network sets
	local    map[api.Key]*entity // this host's endpoints
	policies map[api.Key]*policy
	profiles map[string]*profile
	tiers    map[string]*tier

	// labelSets shares equal label maps between entities.
	labelSets labelTable
	// labelIdx indexes the label maps entities see by label: key → value
	// → maps, each listing its entities.
	labelIdx map[string]map[string]map[*sharedLabels]struct{}
	// deps: profile name → the entities whose labels depend on it.
	deps map[string]map[*entity]struct{}

	// Active sets, and their index by hint (see selectorHint).
	sets      map[string]*ipSet
	setsByKV  map[string]map[string]map[*ipSet]struct{}
	setsByKey map[string]map[*ipSet]struct{}
	unhinted  map[*ipSet]struct{}
	stamp     uint64

	felixDefault, felixNode *api.FelixConfiguration
	pools                   map[string]hoststate.IPPool
	blocks                  map[api.Key]netip.Prefix

	// Work for the next flush.
	dirtyLocal    map[api.Key]struct{}  // local endpoints to re-render
	rematch       map[api.Key]struct{}  // local endpoints to match against every policy
	reselect      map[*policy]struct{}  // policies to match against every local endpoint
	checkPolicies map[*policy]struct{}  // policies whose activity or rules may have changed
	checkProfiles map[*profile]struct{} // likewise for profiles
	pendingSets   map[*ipSet]struct{}   // sets with member changes
	unusedSets    map[*ipSet]struct{}   // sets that lost their last reference
	configDirty   bool
	poolsDirty    bool
	blocksDirty   bool

	// What the callbacks have been told.
	sentConfig *hoststate.Config
	sentPools  map[string]hoststate.IPPool
	sentBlocks map[netip.Prefix]bool
	sentWEPs   map[api.Key]*hoststate.WorkloadEndpoint
	sentHEPs   map[api.Key]*hoststate.HostEndpoint
}

var _ datastore.SyncerCallbacks = (*Graph)(nil)

// New returns the graph for the host named hostname (the spec.node of its
// endpoints). A nil log discards.
func New(hostname string, cb hoststate.Callbacks, log *slog.Logger) *Graph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Graph{
		hostname:      hostname,
		cb:            cb,
		log:           log.With("component", "calc"),
		entities:      map[api.Key]*entity{},
		local:         map[api.Key]*entity{},
		policies:      map[api.Key]*policy{},
		profiles:      map[string]*profile{},
		tiers:         map[string]*tier{},
		labelSets:     labelTable{},
		labelIdx:      map[string]map[string]map[*sharedLabels]struct{}{},
		deps:          map[string]map[*entity]struct{}{},
		sets:          map[string]*ipSet{},
		setsByKV:      map[string]map[string]map[*ipSet]struct{}{},
		setsByKey:     map[string]map[*ipSet]struct{}{},
		unhinted:      map[*ipSet]struct{}{},
		pools:         map[string]hoststate.IPPool{},
		blocks:        map[api.Key]netip.Prefix{},
		dirtyLocal:    map[api.Key]struct{}{},
		rematch:       map[api.Key]struct{}{},
		reselect:      map[*policy]struct{}{},
		checkPolicies: map[*policy]struct{}{},
		checkProfiles: map[*profile]struct{}{},
		pendingSets:   map[*ipSet]struct{}{},
		unusedSets:    map[*ipSet]struct{}{},
		configDirty:   true,
		sentPools:     map[string]hoststate.IPPool{},
		sentBlocks:    map[netip.Prefix]bool{},
		sentWEPs:      map[api.Key]*hoststate.WorkloadEndpoint{},
		sentHEPs:      map[api.Key]*hoststate.HostEndpoint{},
	}
}

// OnStatus implements datastore.SyncerCallbacks. Nothing is emitted until
// the first InSync: the initial state is computed once, whole, so that
// the dataplane never sees an endpoint before the policies that protect
// it have arrived.
func (g *Graph) OnStatus(s datastore.Status) {
	g.log.Debug("datastore status", "status", s.String())
	if s != datastore.InSync {
		return
	}
	g.inSync = true
	g.flush()
	if !g.sentInSync {
		g.sentInSync = true
		g.cb.OnInSync()
	}
}

// OnUpdates implements datastore.SyncerCallbacks: it applies the batch to
// the model and, once in sync, emits what changed for this host.
func (g *Graph) OnUpdates(updates []datastore.Update) {
	for _, u := range updates {
		g.apply(u)
	}
	if g.inSync {
		g.flush()
	}
}

func (g *Graph) apply(u datastore.Update) {
	obj := u.Object
	if u.Type == datastore.Deleted {
		obj = nil
	} else if obj == nil {
		g.log.Warn("ignoring an update without an object", "resource", u.Key.String())
		return
	}
	// A value of an unexpected Go type for its kind would make the type
	// switches below see nil; treat it as absent rather than crash.
	switch u.Key.Kind {
	case "WorkloadEndpoint", "HostEndpoint", "NetworkSet", "GlobalNetworkSet":
		g.onEntity(u.Key, obj)
	case "NetworkPolicy", "GlobalNetworkPolicy":
		switch obj.(type) {
		case nil, *api.NetworkPolicy, *api.GlobalNetworkPolicy:
			g.onPolicy(u.Key, obj)
		default:
			g.log.Error("ignoring an object of the wrong type", "resource", u.Key.String())
		}
	case "Profile":
		pr, _ := obj.(*api.Profile)
		g.onProfile(u.Key.Name, pr)
	case "Tier":
		t, _ := obj.(*api.Tier)
		g.onTier(u.Key.Name, t)
	case "FelixConfiguration":
		fc, _ := obj.(*api.FelixConfiguration)
		g.onFelixConfig(u.Key.Name, fc)
	case "IPPool":
		p, _ := obj.(*api.IPPool)
		g.onIPPool(u.Key.Name, p)
	case blockAffinityKind:
		g.onBlockAffinity(u.Key, obj)
	default:
		g.log.Debug("ignoring a kind the graph does not use", "kind", u.Key.Kind)
	}
}

// flush brings the callbacks up to date. The order of what it emits is the
// contract in hoststate: sets before the policies that use them, policies
// and profiles before the endpoints that use them, removals the other way.
func (g *Graph) flush() {
	// 1. Which policies select which local endpoints.
	for p := range g.reselect {
		for _, e := range g.local {
			g.setMatch(p, e, p.applies(e))
		}
	}
	clear(g.reselect)
	for k := range g.rematch {
		e := g.local[k]
		if e == nil {
			continue
		}
		for _, p := range g.policies {
			g.setMatch(p, e, p.applies(e))
		}
	}
	clear(g.rematch)

	// 2. Which policies and profiles are active, and the sets they need.
	var polUpdates, polRemoves []*policy
	var polOldIDs []hoststate.PolicyID
	for p := range g.checkPolicies {
		_, tierOK := g.tierInfo(p.id.Tier)
		want := !p.deleted && p.sel != nil && tierOK && len(p.matches) > 0
		var refs []string
		if want {
			refs = p.rules.setIDs()
		}
		g.swapRefs(p.activeRefs, refs, p.rules.sets)
		p.activeRefs, p.active = refs, want
		if want {
			r := p.render()
			if p.emitted == nil || !reflect.DeepEqual(*p.emitted, r) {
				if p.emitted != nil && p.emitted.ID != r.ID {
					polOldIDs = append(polOldIDs, p.emitted.ID) // moved to another tier
				}
				p.emitted = &r
				polUpdates = append(polUpdates, p)
			}
			// Order, types or tier may have changed: re-render its endpoints.
			for e := range p.matches {
				g.dirtyLocal[e.key] = struct{}{}
			}
		} else if p.emitted != nil {
			polRemoves = append(polRemoves, p)
		}
		if p.deleted && len(p.matches) == 0 && !want {
			delete(g.policies, p.key)
		}
	}
	clear(g.checkPolicies)
	var profUpdates, profRemoves []*profile
	for p := range g.checkProfiles {
		want := p.localRefs > 0
		var refs []string
		if want && p.exists {
			refs = p.rules.setIDs()
		}
		g.swapRefs(p.activeRefs, refs, p.rules.sets)
		p.activeRefs, p.active = refs, want
		if want {
			r := p.render()
			if p.emitted == nil || !reflect.DeepEqual(*p.emitted, r) {
				p.emitted = &r
				profUpdates = append(profUpdates, p)
			}
		} else if p.emitted != nil {
			profRemoves = append(profRemoves, p)
		}
	}
	clear(g.checkProfiles)

	// 3. Emit, updates first.
	if g.inSync {
		g.emitConfig()
	}
	g.emitPoolsAndBlocks(false)
	g.emitSets()
	slices.SortFunc(polUpdates, func(a, b *policy) int { return comparePolicyIDs(a.id, b.id) })
	for _, p := range polUpdates {
		g.cb.OnPolicyUpdate(*p.emitted)
	}
	slices.SortFunc(profUpdates, func(a, b *profile) int { return cmp.Compare(a.name, b.name) })
	for _, p := range profUpdates {
		g.cb.OnProfileUpdate(*p.emitted)
	}
	g.emitEndpoints()
	slices.SortFunc(polRemoves, func(a, b *policy) int { return comparePolicyIDs(a.id, b.id) })
	for _, id := range polOldIDs {
		g.cb.OnPolicyRemove(id)
	}
	for _, p := range polRemoves {
		g.cb.OnPolicyRemove(p.emitted.ID)
		p.emitted = nil
	}
	slices.SortFunc(profRemoves, func(a, b *profile) int { return cmp.Compare(a.name, b.name) })
	for _, p := range profRemoves {
		g.cb.OnProfileRemove(p.name)
		p.emitted = nil
	}
	for _, p := range profRemoves {
		g.gcProfile(p)
	}
	for _, p := range profUpdates {
		g.gcProfile(p)
	}
	g.removeUnusedSets()
	g.emitPoolsAndBlocks(true)
}

func comparePolicyIDs(a, b hoststate.PolicyID) int {
	return cmp.Or(cmp.Compare(a.Tier, b.Tier), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}

// swapRefs moves a rule owner's set references from old to new, adding
// before removing so that a set kept by the owner is never torn down.
func (g *Graph) swapRefs(old, nu []string, specs map[string]setSpec) {
	for _, id := range nu {
		g.incRef(specs[id])
	}
	for _, id := range old {
		g.decRef(id)
	}
}

func (g *Graph) emitSets() {
	var fresh, changed []*ipSet
	for _, s := range g.sets {
		if s.refs > 0 && !s.emitted {
			fresh = append(fresh, s)
		}
	}
	for s := range g.pendingSets {
		if s.emitted && len(s.pending) > 0 && s.refs > 0 {
			changed = append(changed, s)
		}
	}
	clear(g.pendingSets)
	byID := func(a, b *ipSet) int { return cmp.Compare(a.id, b.id) }
	slices.SortFunc(fresh, byID)
	slices.SortFunc(changed, byID)
	for _, s := range fresh {
		s.emitted = true
		s.pending = nil
		g.cb.OnIPSetUpdate(hoststate.IPSet{ID: s.id, Type: s.setType(), Members: s.memberList()})
	}
	for _, s := range changed {
		var added, removed []hoststate.IPSetMember
		for m, d := range s.pending {
			if d > 0 {
				added = append(added, m)
			} else {
				removed = append(removed, m)
			}
		}
		sortMembers(added)
		sortMembers(removed)
		s.pending = nil
		g.cb.OnIPSetDelta(s.id, added, removed)
	}
}

func (g *Graph) removeUnusedSets() {
	var gone []*ipSet
	for s := range g.unusedSets {
		if s.refs <= 0 && g.sets[s.id] == s {
			gone = append(gone, s)
		}
	}
	clear(g.unusedSets)
	slices.SortFunc(gone, func(a, b *ipSet) int { return cmp.Compare(a.id, b.id) })
	for _, s := range gone {
		g.deactivateSet(s)
		if s.emitted {
			g.cb.OnIPSetRemove(s.id)
		}
	}
}

func (g *Graph) emitConfig() {
	if !g.configDirty {
		return
	}
	g.configDirty = false
	cfg := g.computeConfig()
	if g.sentConfig != nil && reflect.DeepEqual(*g.sentConfig, cfg) {
		return
	}
	g.sentConfig = &cfg
	g.cb.OnConfigUpdate(cfg)
}

// emitPoolsAndBlocks emits updates (removals false) or removals.
func (g *Graph) emitPoolsAndBlocks(removals bool) {
	if g.poolsDirty {
		for _, name := range slices.Sorted(maps.Keys(g.pools)) {
			if removals {
				break
			}
			p := g.pools[name]
			if old, ok := g.sentPools[name]; !ok || old != p {
				g.sentPools[name] = p
				g.cb.OnIPPoolUpdate(name, p)
			}
		}
		if removals {
			for _, name := range slices.Sorted(maps.Keys(g.sentPools)) {
				if _, ok := g.pools[name]; !ok {
					delete(g.sentPools, name)
					g.cb.OnIPPoolRemove(name)
				}
			}
			g.poolsDirty = false
		}
	}
	if g.blocksDirty {
		want := map[netip.Prefix]bool{}
		for _, p := range g.blocks {
			want[p] = true
		}
		all := slices.SortedFunc(maps.Keys(want), comparePrefixes)
		if !removals {
			for _, p := range all {
				if !g.sentBlocks[p] {
					g.sentBlocks[p] = true
					g.cb.OnLocalBlockUpdate(p)
				}
			}
			return
		}
		for _, p := range slices.SortedFunc(maps.Keys(g.sentBlocks), comparePrefixes) {
			if !want[p] {
				delete(g.sentBlocks, p)
				g.cb.OnLocalBlockRemove(p)
			}
		}
		g.blocksDirty = false
	}
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// emitEndpoints renders the local endpoints that may have changed.
func (g *Graph) emitEndpoints() {
	keys := g.widenWildcardDirt(slices.SortedFunc(maps.Keys(g.dirtyLocal), compareKeys))
	clear(g.dirtyLocal)
	for _, k := range keys {
		e := g.local[k]
		switch {
		case e != nil && e.wep != nil:
			if _, was := g.sentHEPs[k]; was { // cannot happen: keys carry the kind
				delete(g.sentHEPs, k)
			}
			w := g.renderWEP(e)
			if old := g.sentWEPs[k]; old == nil || !reflect.DeepEqual(*old, w) {
				g.sentWEPs[k] = &w
				g.cb.OnWorkloadEndpointUpdate(w)
			}
		case e != nil && e.hep != nil:
			h := g.renderHEP(e)
			if old := g.sentHEPs[k]; old == nil || !reflect.DeepEqual(*old, h) {
				g.sentHEPs[k] = &h
				g.cb.OnHostEndpointUpdate(h)
			}
		default:
			if old := g.sentWEPs[k]; old != nil {
				delete(g.sentWEPs, k)
				g.cb.OnWorkloadEndpointRemove(old.ID)
			}
			if old := g.sentHEPs[k]; old != nil {
				delete(g.sentHEPs, k)
				g.cb.OnHostEndpointRemove(old.ID)
			}
		}
	}
}

func compareKeys(a, b api.Key) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// activePolicies lists the active policies selecting e that pass keep.
func activePolicies(e *entity, keep func(*policy) bool) []*policy {
	var out []*policy
	for p := range e.policies {
		if p.active && keep(p) {
			out = append(out, p)
		}
	}
	return out
}

func (g *Graph) renderWEP(e *entity) hoststate.WorkloadEndpoint {
	w := hoststate.WorkloadEndpoint{
		ID:            hoststate.EndpointID(e.key.Namespace + "/" + e.key.Name),
		InterfaceName: e.wep.Spec.InterfaceName,
		MAC:           e.wep.Spec.MAC,
		Tiers:         g.tiersFor(activePolicies(e, func(*policy) bool { return true })),
		ProfileIDs:    slices.Clone(e.profiles),
	}
	for _, n := range e.nets {
		if n.Addr().Is4() {
			w.IPv4Nets = append(w.IPv4Nets, n)
		} else {
			w.IPv6Nets = append(w.IPv6Nets, n)
		}
	}
	w.IPNATs, w.AllowSpoofedSourcePrefixes = g.wepExtras(e)
	return w
}

func (g *Graph) renderHEP(e *entity) hoststate.HostEndpoint {
	if isWildcardHEP(e) {
		return g.renderWildcardHEP(e)
	}
	h := hoststate.HostEndpoint{
		ID:             hoststate.EndpointID(e.key.Name),
		InterfaceName:  e.hep.Spec.InterfaceName,
		Tiers:          g.tiersFor(activePolicies(e, func(p *policy) bool { return !p.untracked && !p.preDNAT })),
		UntrackedTiers: g.tiersFor(activePolicies(e, func(p *policy) bool { return p.untracked })),
		PreDNATTiers:   g.tiersFor(activePolicies(e, func(p *policy) bool { return p.preDNAT })),
		ForwardTiers:   g.tiersFor(activePolicies(e, func(p *policy) bool { return p.forward && !p.untracked && !p.preDNAT })),
		ProfileIDs:     slices.Clone(e.profiles),
	}
	for _, n := range e.nets {
		h.ExpectedIPs = append(h.ExpectedIPs, n.Addr())
	}
	return h
}
