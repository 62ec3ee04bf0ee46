package dataplane

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/servalnet/serval/internal/hoststate"
)

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Dataplane. NFT is required; a nil Routes or Sysctl
// disables that manager (tests of one manager leave the others out).
type Options struct {
	Logger *slog.Logger
	Clock  Clock
	NFT    NFT
	Routes RouteHandle
	Sysctl Sysctl
	// Ifaces lists the host's interfaces and addresses, for host
	// endpoints by expectedIPs and interfaceExclude (hostifaces.go); nil
	// leaves those unresolved.
	Ifaces HostIfaces
	// HostChanges, when set, says the host's addresses or interfaces
	// changed (WatchHost): Run reads them again and applies.
	HostChanges <-chan struct{}
	// ResyncInterval is how often Run reads the kernel back and repairs
	// differences; zero means 90 seconds. FelixConfiguration
	// nftablesRefreshInterval overrides it (refresh.go).
	ResyncInterval time.Duration
	// AfterApply, when set, is called by Run after every Apply, from Run's
	// goroutine: serval-node turns it into readiness and metrics.
	AfterApply func(ApplyResult)
}

// ApplyResult is what Run reports after each Apply.
type ApplyResult struct {
	Err    error
	Stats  ApplyStats
	InSync bool // the datastore's whole state had arrived before this Apply
	Resync bool // this Apply read the kernel back first
}

// Dataplane programs one host's kernel from the calculation graph's output.
//
// It implements hoststate.Callbacks: each callback only queues the update
// (safe from any goroutine, never blocks) and pokes Run. Apply, Resync and
// Run belong to one goroutine: Apply drains the queue into the desired
// state, renders what changed and programs it; nothing is deleted from the
// kernel before OnInSync. The zero value is not usable; call New.
type Dataplane struct {
	log            *slog.Logger
	clock          Clock
	nft            NFT
	routes         *routeManager
	ifaces         *ifaceManager
	resyncInterval time.Duration
	// fillBatch bounds the elements of one transaction that only fills
	// sets no rule refers to yet (see splitFill).
	fillBatch  int
	afterApply func(ApplyResult)
	heartbeat  heartbeat // heartbeat.go

	mu      sync.Mutex
	pending []func()
	trigger chan struct{} // size 1: bursts of updates merge into one Apply

	// Everything below is owned by the Apply goroutine.
	cfg      hoststate.Config
	inSync   bool
	ipsets   map[string]*ipsetState
	policies map[string]hoststate.Policy
	profiles map[string]hoststate.Profile
	weps     map[hoststate.EndpointID]hoststate.WorkloadEndpoint
	heps     map[hoststate.EndpointID]hoststate.HostEndpoint
	pools    map[string]hoststate.IPPool

	dirtyIPSets   map[string]bool
	dirtyPolicies map[string]bool
	dirtyProfiles map[string]bool
	dirtyWEPs     map[hoststate.EndpointID]bool
	dirtyHEPs     map[hoststate.EndpointID]bool
	allDirty      bool // config changed: render everything again

	// Reverse indexes: who must be rendered again when a set, policy or
	// profile appears or goes (members changing does not matter).
	setUsers  map[string]map[string]bool // set ID → "p:"/"r:" keys
	polUsers  map[string]map[string]bool // policy key → "w:"/"h:" keys
	profUsers map[string]map[string]bool // profile name → endpoint keys
	userSets  map[string][]string        // reverse of setUsers
	epRefs    map[string][]string        // endpoint key → policy/profile user keys it registered

	// Desired table.
	chains      map[string]*chain
	hashes      map[string][]string
	sets        map[string]*set
	objChains   map[string][]string        // object key → chains it owns
	objMapElems map[string]map[string]elem // endpoint key → map name → element
	wildcard    map[string]map[string]string
	dirtyChains map[string]bool
	dirtySets   map[string]bool
	// An IP set goes to the kernel only while a chain tests it: when every
	// policy using it compiles into runs, its members are in the runs'
	// sets already (at 100,000 endpoints that was a third of the
	// elements of a cold start's transaction, for nothing).
	setRefs     map[string]int    // kernel set name → chains whose rules test it
	refsChanged map[string]bool   // set names whose count left or reached zero
	setNameID   map[string]string // kernel IP set name → hoststate set ID

	// What the kernel holds, as far as we know.
	have       *Snapshot
	needRead   bool // read the kernel back before the next plan
	fullDiff   bool // diff every object, not only dirty ones
	lastResync time.Time
	fpCache    map[string]string // rule hash → content fingerprint (drift.go)
	// hostIfacesStale: read the host's interfaces and addresses again
	// (hostifaces.go).
	hostIfacesStale bool
	hostIfaces      HostIfaces
	hostChanges     <-chan struct{}
	host            hostView
	hepResolved     map[hoststate.EndpointID][]string // expectedIPs endpoint → interfaces
	hepSubKeys      map[string][]string               // host endpoint key → interfaces with map elements

	stats ApplyStats

	rb runBook // compiled runs (compile.go)
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

// ApplyStats describes the last Apply, for metrics and benchmarks.
type ApplyStats struct {
	Ops      int // nftables operations in the transaction (0: nothing changed)
	Elements int // set and map elements added or deleted
	Duration time.Duration
}

// New returns a Dataplane. It reads the kernel back on its first Apply and
// changes only what differs, so a restarted node does not disturb traffic.
func New(o Options) (*Dataplane, error) {
	if o.NFT == nil {
		return nil, errors.New("dataplane: Options.NFT is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = 90 * time.Second
	}
	log := o.Logger.With("component", "dataplane")
	d := &Dataplane{
		log: log, clock: o.Clock, nft: o.NFT, resyncInterval: o.ResyncInterval, afterApply: o.AfterApply,
		fillBatch: defaultFillBatch,
		trigger:   make(chan struct{}, 1),
		ipsets:    map[string]*ipsetState{},
		policies:  map[string]hoststate.Policy{}, profiles: map[string]hoststate.Profile{},
		weps: map[hoststate.EndpointID]hoststate.WorkloadEndpoint{}, heps: map[hoststate.EndpointID]hoststate.HostEndpoint{},
		pools:       map[string]hoststate.IPPool{},
		dirtyIPSets: map[string]bool{}, dirtyPolicies: map[string]bool{}, dirtyProfiles: map[string]bool{},
		dirtyWEPs: map[hoststate.EndpointID]bool{}, dirtyHEPs: map[hoststate.EndpointID]bool{},
		setUsers: map[string]map[string]bool{}, polUsers: map[string]map[string]bool{}, profUsers: map[string]map[string]bool{},
		userSets: map[string][]string{}, epRefs: map[string][]string{},
		chains: map[string]*chain{}, hashes: map[string][]string{}, sets: map[string]*set{},
		objChains: map[string][]string{}, objMapElems: map[string]map[string]elem{}, wildcard: map[string]map[string]string{},
		dirtyChains: map[string]bool{}, dirtySets: map[string]bool{},
		setRefs: map[string]int{}, refsChanged: map[string]bool{}, setNameID: map[string]string{},
		have: newSnapshot(), needRead: true, fullDiff: true, allDirty: true,
		rb:         newRunBook(),
		hostIfaces: o.Ifaces, hostIfacesStale: true, hepSubKeys: map[string][]string{}, hostChanges: o.HostChanges,
	}
	if o.Routes != nil {
		d.routes = newRouteManager(o.Routes, log)
	}
	if o.Sysctl != nil {
		d.ifaces = newIfaceManager(o.Sysctl, log)
	}
	for _, m := range allMaps {
		d.putSet(&set{Name: m, Kind: kindIfaceVmap, Comment: "dispatch", Elems: map[elem]struct{}{}})
	}
	return d, nil
}

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

// --- apply ---

// Resync makes the next Apply read the kernel back and repair whatever
// differs from the desired state.
func (d *Dataplane) Resync() { d.needRead = true; d.fullDiff = true }

// Stats returns figures about the last Apply.
func (d *Dataplane) Stats() ApplyStats { return d.stats }

// Apply programs everything that changed since the last successful Apply:
// nftables in one transaction, then routes, then interface settings. On
// failure the changes stay pending and the next Apply reads the kernel back
// first.
func (d *Dataplane) Apply(ctx context.Context) error {
	start := d.clock.Now()
	d.drain()
	if err := ctx.Err(); err != nil {
		return err
	}
	_, herr := d.readHost()
	nerr := d.applyNFT()
	var rerr, ierr error
	if d.routes != nil {
		rerr = d.routes.apply(d.inSync)
	}
	if d.ifaces != nil {
		ierr = d.ifaces.apply()
	}
	d.stats.Duration = d.clock.Now().Sub(start)
	return errors.Join(herr, nerr, rerr, ierr)
}

func (d *Dataplane) drain() {
	d.mu.Lock()
	fs := d.pending
	d.pending = nil
	d.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (d *Dataplane) applyNFT() error {
	if d.needRead {
		s, err := d.nft.Read()
		if err != nil {
			return fmt.Errorf("reading nftables table %s back: %w", TableName, err)
		}
		d.markDrift(s)
		d.have = s
		d.needRead = false
		d.fullDiff = true
		d.lastResync = d.clock.Now()
	}
	d.render()

	var chainNames, setNames []string
	if d.fullDiff {
		chainNames = unionKeys(d.chains, d.have.Chains)
		setNames = unionKeys(d.sets, d.have.Sets)
	} else {
		chainNames = slices.Collect(maps.Keys(d.dirtyChains))
		setNames = slices.Collect(maps.Keys(d.dirtySets))
	}
	ops := plan(d.have, d.chains, d.hashes, d.sets, chainNames, setNames, d.inSync)
	d.stats.Ops, d.stats.Elements = len(ops), 0
	for _, o := range ops {
		d.stats.Elements += len(o.Elems)
	}
	fill := splitFill(ops, d.fillBatch)
	if len(fill) > 0 {
		var filled []Op
		for _, t := range fill {
			if err := d.nft.Apply(t); err != nil {
				// Some new sets may be in the kernel, filled or not: no
				// rule refers to them, and the read-back finds them.
				d.needRead = true
				return fmt.Errorf("programming nftables table %s (filling new sets, %d ops): %w", TableName, len(t), err)
			}
			filled = append(filled, t...)
		}
		d.recordApplied(filled, setNames)
		ops = ops[len(filled):]
	}
	if len(ops) > 0 {
		if err := d.nft.Apply(ops); err != nil {
			d.needRead = true
			return fmt.Errorf("programming nftables table %s (%d ops): %w", TableName, len(ops), err)
		}
		d.recordApplied(ops, setNames)
	}
	clear(d.dirtyChains)
	clear(d.dirtySets)
	d.fullDiff = false
	return nil
}

// defaultFillBatch is the most elements a set-filling transaction carries.
// The netlink library builds every message of a transaction in memory
// before sending any; at a cold start with 100,000 remote endpoints that
// was 160,000 elements at once, tens of MB alive together on top of the
// heap they were compiled from.
const defaultFillBatch = 20_000

// splitFill takes from the front of ops, when they carry more than
// batch elements, the table's creation and the creation and filling of
// the sets this plan makes (not those it replaces, nor verdict maps), in
// transactions of at most about batch elements each; the rest of ops
// stays one transaction.
// No rule refers to a set before the rest runs, so each transaction
// leaves the kernel consistent, and what packets see still changes in
// one step: the rest. Ops are reordered so the fill comes first, which
// plan's order allows (table, sets and set elements before any chain).
func splitFill(ops []Op, batch int) [][]Op {
	total := 0
	for _, o := range ops {
		total += len(o.Elems)
	}
	if total <= batch {
		return nil
	}
	fresh, replaced := map[string]bool{}, map[string]bool{}
	for _, o := range ops {
		switch o.Kind {
		case OpAddSet:
			// A verdict map's elements name chains, which come later.
			fresh[o.Name] = o.Set.Kind != kindIfaceVmap
		case OpDelSet:
			replaced[o.Name] = true
		}
	}
	isFill := func(o Op) bool {
		switch o.Kind {
		case OpAddTable:
			return true
		case OpAddSet, OpAddElems:
			return fresh[o.Name] && !replaced[o.Name]
		}
		return false
	}
	var fill, rest []Op
	for _, o := range ops {
		if isFill(o) {
			fill = append(fill, o)
		} else {
			rest = append(rest, o)
		}
	}
	n := 0
	for _, o := range fill {
		n += len(o.Elems)
	}
	if n == 0 {
		return nil
	}
	copy(ops, fill)
	copy(ops[len(fill):], rest)
	var out [][]Op
	start, elems := 0, 0
	for i, o := range fill {
		if elems > 0 && elems+len(o.Elems) > batch {
			out = append(out, fill[start:i:i])
			start, elems = i, 0
		}
		elems += len(o.Elems)
	}
	out = append(out, fill[start:len(fill):len(fill)])
	// The slices above alias fill, which the caller no longer needs; the
	// caller resumes at ops[len(fill):].
	return out
}

// recordApplied brings the snapshot of the kernel up to date after a
// committed transaction. A set the kernel now holds exactly as desired
// shares its elements with the desired set instead of keeping a copy (at
// 100,000 remote endpoints the compiled runs' sets are 200,000 elements);
// a set made by this transaction is shared from the start, so the copy
// is never built.
func (d *Dataplane) recordApplied(ops []Op, setNames []string) {
	fresh := map[string]bool{}
	for _, o := range ops {
		if o.Kind == OpAddSet && d.sets[o.Name] != nil && d.sets[o.Name].Kind == o.Set.Kind {
			fresh[o.Name] = true
		}
	}
	rest := ops
	if len(fresh) > 0 {
		rest = make([]Op, 0, len(ops))
		for _, o := range ops {
			switch o.Kind {
			case OpAddSet, OpAddElems, OpDelElems:
				if fresh[o.Name] {
					continue
				}
			}
			rest = append(rest, o)
		}
	}
	applyToSnapshot(d.have, rest)
	for n := range fresh {
		// Made and filled by this transaction: exactly the desired set.
		w := d.sets[n]
		d.have.Sets[n] = &SetState{Kind: w.Kind, Elems: w.Elems}
		w.shared = true
	}
	for _, n := range setNames {
		w, hs := d.sets[n], d.have.Sets[n]
		// Every desired element was added; the same size means nothing
		// else is left (deletions wait for InSync).
		if w != nil && hs != nil && !w.shared && hs.Kind == w.Kind && len(hs.Elems) == len(w.Elems) {
			hs.Elems = w.Elems
			w.shared = true
		}
	}
}

// elemsToChange returns a desired set's elements to change in place,
// copying them first if the snapshot shares them.
func (d *Dataplane) elemsToChange(name string) map[elem]struct{} {
	s := d.sets[name]
	if s.shared {
		s.Elems = maps.Clone(s.Elems)
		s.shared = false
	}
	return s.Elems
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	out := make([]string, 0, len(a)+len(b))
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// Run owns the Dataplane until ctx ends: it applies after updates (bursts
// merge through the size-1 trigger channel), reads the kernel back every
// ResyncInterval, and retries a failed Apply with backoff.
func (d *Dataplane) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	rf := newRefresher(d)
	var retry <-chan time.Time
	beat := d.heartbeat.arm(d.clock)
	for {
		d.heartbeat.beat()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-beat:
			beat = d.heartbeat.arm(d.clock)
			continue
		case <-d.trigger:
		case <-rf.c[refreshNFT]:
			rf.fired(refreshNFT)
		case <-rf.c[refreshRoutes]:
			rf.fired(refreshRoutes)
		case <-rf.c[refreshIfaces]:
			rf.fired(refreshIfaces)
		case <-d.hostChanges:
			d.hostIfacesStale = true
		case <-retry:
			retry = nil
		}
		resyncing := d.needRead
		err := d.Apply(ctx)
		rf.update() // the configuration may have changed the intervals
		if d.afterApply != nil && ctx.Err() == nil {
			d.afterApply(ApplyResult{Err: err, Stats: d.stats, InSync: d.inSync, Resync: resyncing})
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
			d.log.Warn("apply failed; retrying", "err", err, "in", backoff)
			retry = d.clock.After(backoff)
			continue
		}
		backoff = 0
	}
}

// --- rendering into the desired table ---

func (d *Dataplane) knownSet(id string) bool { _, ok := d.ipsets[id]; return ok }

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

func (d *Dataplane) policyKnown(id hoststate.PolicyID) bool {
	_, ok := d.policies[policyKey(id)]
	return ok
}

func (d *Dataplane) profileKnown(name string) bool { _, ok := d.profiles[name]; return ok }

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

// Dump prints the desired table in the golden-file format.
func (d *Dataplane) Dump() string { return dumpModel(d.sets, d.chains) }
