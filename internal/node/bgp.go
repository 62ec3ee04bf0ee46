package node

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/routing"
)

// bgpKinds are what the BGP configuration is computed from.
var bgpKinds = []string{"Node", "BGPConfiguration", "BGPPeer", "BGPFilter", "IPPool", "BlockAffinity", "WorkloadEndpoint", "FelixConfiguration"}

// bgpLoop keeps the speaker matching the datastore. The syncer's goroutine
// records resources (OnUpdates) and pokes a size-1 trigger; run, on its own
// goroutine, computes the desired configuration from a snapshot and
// reconciles the speaker, so a slow reconcile never holds up the syncer
// and a burst of changes costs one reconcile.
type bgpLoop struct {
	node    string
	speaker *routing.Speaker
	secrets routing.SecretSource
	log     *slog.Logger
	metrics *Metrics
	trigger chan struct{}
	health  *Worker       // liveness of run
	beatDur time.Duration // how often run beats while idle

	mu     sync.Mutex
	synced bool
	// objects are the cluster-wide BGP resources (Nodes, BGPConfigurations,
	// BGPPeers, BGPFilters, IPPools): few, and all needed.
	objects map[api.Key]api.Resource
	// blocks and addrs are what this host's own affinities and endpoints
	// bring, by key. Other hosts' endpoints and affinities (100,000 in a
	// large cluster) are not kept: BGP does not need them, and a change of
	// one costs a map lookup, not a recomputation.
	blocks map[api.Key]netip.Prefix
	addrs  map[api.Key][]netip.Addr
	// floating are this host's endpoints' floating IPs (ipNATs' external
	// addresses), advertised when FelixConfiguration floatingIPs allows.
	floating map[api.Key]floatingAddrs
}

// floatingAddrs are one endpoint's floating IPs, and whether it is an
// OpenStack workload (which has them whatever floatingIPs says).
type floatingAddrs struct {
	addrs     []netip.Addr
	openstack bool
}

func newBGPLoop(node string, sp *routing.Speaker, secrets routing.SecretSource, log *slog.Logger, m *Metrics) *bgpLoop {
	return &bgpLoop{node: node, speaker: sp, secrets: secrets, log: log.With("component", "bgp"),
		metrics: m, trigger: make(chan struct{}, 1), objects: map[api.Key]api.Resource{},
		blocks: map[api.Key]netip.Prefix{}, addrs: map[api.Key][]netip.Addr{},
		floating: map[api.Key]floatingAddrs{}}
}

func (b *bgpLoop) OnStatus(s datastore.Status) {
	if s == datastore.InSync {
		b.mu.Lock()
		b.synced = true
		b.mu.Unlock()
		b.poke()
	}
}

func (b *bgpLoop) OnUpdates(us []datastore.Update) {
	b.mu.Lock()
	changed := false
	for _, u := range us {
		if b.record(u) {
			changed = true
		}
	}
	b.mu.Unlock()
	if changed {
		b.poke()
	}
}

func (b *bgpLoop) poke() {
	select {
	case b.trigger <- struct{}{}:
	default:
	}
}

func (b *bgpLoop) run(ctx context.Context) {
	defer b.speaker.Stop()
	var last routing.Desired
	var retry <-chan time.Time
	backoff := time.Duration(0)
	beat := time.NewTicker(cmp.Or(b.beatDur, DefaultHeartbeatInterval))
	defer beat.Stop()
	for {
		b.health.Beat()
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			continue
		case <-b.trigger:
		case <-retry:
			retry = nil
		}
		in, ok := b.input()
		if !ok {
			continue // not in sync yet: an empty view would tear sessions down
		}
		d, err := routing.Compute(in, b.secrets)
		if err != nil {
			b.log.Error("computing the BGP configuration", "err", err)
			b.metrics.Errors.WithLabelValues("bgp").Inc()
			continue
		}
		if reflect.DeepEqual(d, last) && backoff == 0 {
			continue
		}
		for _, p := range d.Problems {
			b.log.Warn("BGP configuration problem", "problem", p)
		}
		if err := b.speaker.Reconcile(ctx, d); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			b.log.Warn("reconciling the BGP speaker; retrying", "err", err, "in", backoff)
			b.metrics.Errors.WithLabelValues("bgp").Inc()
			retry = time.After(backoff)
			continue
		}
		backoff, last = 0, d
	}
}

// input builds the calculator's input from the current snapshot: this
// host's blocks from its confirmed affinities, and as borrowed addresses
// those of its workloads that lie outside every one of its blocks.
func (b *bgpLoop) input() (routing.Input, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.synced {
		return routing.Input{}, false
	}
	in := routing.Input{NodeName: b.node}
	for _, p := range b.blocks {
		in.OwnedBlocks = append(in.OwnedBlocks, p)
	}
	for _, r := range b.objects {
		switch o := r.(type) {
		case *api.Node:
			in.Nodes = append(in.Nodes, o)
		case *api.BGPConfiguration:
			in.BGPConfigs = append(in.BGPConfigs, o)
		case *api.BGPPeer:
			in.Peers = append(in.Peers, o)
		case *api.BGPFilter:
			in.Filters = append(in.Filters, o)
		case *api.IPPool:
			in.Pools = append(in.Pools, o)
		}
	}
	for _, as := range b.addrs {
		for _, a := range as {
			in.LocalIPs = append(in.LocalIPs, a)
			if !insideAny(a, in.OwnedBlocks) {
				in.BorrowedIPs = append(in.BorrowedIPs, a)
			}
		}
	}
	// Floating IPs are routed towards their workload on this host, and
	// advertised like a borrowed address, where the dataplane programs
	// them (calc/wepextras.go): with floatingIPs Enabled, or for OpenStack.
	floatingOn := floatingIPsEnabled(b.objects, b.node)
	for _, f := range b.floating {
		if !floatingOn && !f.openstack {
			continue
		}
		for _, a := range f.addrs {
			in.LocalIPs = append(in.LocalIPs, a)
			if !insideAny(a, in.OwnedBlocks) {
				in.BorrowedIPs = append(in.BorrowedIPs, a)
			}
		}
	}
	// Map order is random; the calculator sorts what it outputs, but sort
	// here too so that logs and problems come out the same each time.
	sort.Slice(in.Nodes, func(i, j int) bool { return in.Nodes[i].Name < in.Nodes[j].Name })
	sort.Slice(in.OwnedBlocks, func(i, j int) bool { return in.OwnedBlocks[i].String() < in.OwnedBlocks[j].String() })
	sort.Slice(in.BorrowedIPs, func(i, j int) bool { return in.BorrowedIPs[i].Less(in.BorrowedIPs[j]) })
	sort.Slice(in.LocalIPs, func(i, j int) bool { return in.LocalIPs[i].Less(in.LocalIPs[j]) })
	return in, true
}

func insideAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// floatingIPsEnabled merges FelixConfiguration floatingIPs for node as
// the calculation graph does: "node.<name>" over "default", unset Disabled.
func floatingIPsEnabled(objs map[api.Key]api.Resource, node string) bool {
	on := false
	for _, name := range []string{"default", "node." + node} {
		o, ok := objs[api.Key{Kind: "FelixConfiguration", Name: name}].(*api.FelixConfiguration)
		if ok && o.Spec.FloatingIPs != nil {
			on = *o.Spec.FloatingIPs == "Enabled"
		}
	}
	return on
}
