package dataplane

import (
	"context"
	"errors"
	"log/slog"
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

// Dump prints the desired table in the golden-file format.
func (d *Dataplane) Dump() string { return dumpModel(d.sets, d.chains) }
