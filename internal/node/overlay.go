package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/overlay"
)

// overlayKinds are what the overlay is computed from.
var overlayKinds = []string{"Node", "IPPool", "BlockAffinity", "FelixConfiguration", "WorkloadEndpoint"}

// wepAddrs is what the overlay keeps of a WorkloadEndpoint: its host and
// addresses, to route a remote workload whose address is borrowed (outside
// every block of its host) by a /32 (/128) through the tunnel.
type wepAddrs struct {
	node string
	ips  []netip.Addr
}

// OverlayDeps are what the overlay loop drives; nil in Deps turns it off.
type OverlayDeps struct {
	Manager *overlay.Manager
	Links   overlay.LinkLister // for the uplink MTU
	IPAM    ipam.Interface     // allocates the tunnel addresses
	// MTUFile is where the workload MTU is written ("" : not written).
	MTUFile string
	// IPIPAvailable says whether the kernel has IPIP.
	IPIPAvailable bool
	// Resync is how often the kernel is read back even with no change
	// (and the uplink MTU checked); 10s when zero.
	Resync time.Duration
	// Guard programs the nftables guard of the VXLAN port (nil: none).
	Guard func(overlay.Guard) error
	// AfterApply, when set, runs after each apply that changed the set of
	// overlay routes (serval-node resyncs BGP's kernel routes, which
	// stand aside for ours and must come back when ours go).
	AfterApply func()
}

// newOverlay builds the overlay loop: one more consumer of the agent's
// single syncer (behind the admission filter, so it sees only admitted
// objects), with its own liveness worker.
func (a *Agent) newOverlay(name string, beat *Worker) *overlayLoop {
	o := newOverlayLoop(name, a.d.Datastore, *a.d.Overlay, a.d.Logger, a.Health)
	o.beat, o.beatDur = beat, a.heartbeatInterval()
	return o
}

// runOverlay runs the overlay loop until ctx ends. With BGP on, a change
// of the overlay's routes resyncs BGP's kernel routes: theirs stand aside
// for ours, and must come back when ours go (a pool switched to Never).
func (a *Agent) runOverlay(ctx context.Context, o *overlayLoop) {
	if o.d.AfterApply == nil && a.d.Speaker != nil {
		sp := a.d.Speaker
		o.d.AfterApply = func() {
			go func() { _ = sp.SyncKernel(ctx) }()
		}
	}
	go o.run(ctx)
}

// overlayLoop keeps the overlay matching the datastore, like bgpLoop.
type overlayLoop struct {
	node    string
	ds      datastore.Interface
	d       OverlayDeps
	log     *slog.Logger
	health  *Health       // readiness: the overlay's problems are reasons
	beat    *Worker       // liveness of run
	beatDur time.Duration // how often run beats while idle
	trigger chan struct{}

	mu      sync.Mutex
	synced  bool
	objects map[api.Key]api.Resource
	weps    map[api.Key]wepAddrs
	// gone are Nodes deleted since the last round, whose tunnel
	// addresses are released (by every host: releasing is idempotent).
	gone []string

	problems []string
}

func newOverlayLoop(node string, ds datastore.Interface, d OverlayDeps, log *slog.Logger, h *Health) *overlayLoop {
	if d.Resync == 0 {
		d.Resync = 10 * time.Second
	}
	// Not ready until the first round has run: workloads created before
	// would miss the MTU file and the tunnel routes.
	first := []string{"the overlay has not been computed yet"}
	h.SetOverlayProblems(first)
	return &overlayLoop{node: node, ds: ds, d: d, log: log.With("component", "overlay"), health: h,
		trigger: make(chan struct{}, 1), objects: map[api.Key]api.Resource{}, weps: map[api.Key]wepAddrs{}, problems: first}
}

func (o *overlayLoop) OnStatus(s datastore.Status) {
	if s == datastore.InSync {
		o.mu.Lock()
		o.synced = true
		o.mu.Unlock()
		o.poke()
	}
}

func (o *overlayLoop) OnUpdates(us []datastore.Update) {
	o.mu.Lock()
	for _, u := range us {
		if u.Key.Kind == "WorkloadEndpoint" {
			delete(o.weps, u.Key)
			if w, ok := u.Object.(*api.WorkloadEndpoint); ok && u.Type != datastore.Deleted && w.Spec.Node != o.node {
				var ips []netip.Addr
				for _, n := range w.Spec.IPNetworks {
					if p, err := netip.ParsePrefix(n); err == nil && p.IsSingleIP() {
						ips = append(ips, p.Addr())
					}
				}
				o.weps[u.Key] = wepAddrs{node: w.Spec.Node, ips: ips}
			}
			continue
		}
		if u.Type == datastore.Deleted {
			delete(o.objects, u.Key)
			if u.Key.Kind == "Node" && u.Key.Name != o.node {
				o.gone = append(o.gone, u.Key.Name)
			}
		} else {
			o.objects[u.Key] = u.Object
		}
	}
	o.mu.Unlock()
	o.poke()
}

func (o *overlayLoop) poke() {
	select {
	case o.trigger <- struct{}{}:
	default:
	}
}

func (o *overlayLoop) run(ctx context.Context) {
	tick := time.NewTicker(o.d.Resync)
	defer tick.Stop()
	beat := time.NewTicker(cmp.Or(o.beatDur, DefaultHeartbeatInterval))
	defer beat.Stop()
	var lastRoutes []overlay.Route
	var lastGuard *overlay.Guard
	var lastWarnings []string
	for {
		o.beat.Beat()
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			continue
		case <-o.trigger:
		case <-tick.C:
		}
		in, ok := o.input()
		if !ok {
			continue
		}
		o.releaseGone(ctx)
		d := overlay.Compute(in)
		if err := o.ensureTunnels(ctx, in, d); err != nil {
			o.log.Warn("tunnel addresses", "err", err)
			d.Problems = append(d.Problems, err.Error())
		}
		err := o.d.Manager.Apply(d)
		if err != nil {
			o.log.Warn("programming the overlay", "err", err)
			d.Problems = append(d.Problems, "programming the overlay: "+err.Error())
		}
		if o.d.Guard != nil {
			g := overlay.GuardOf(d, "cali")
			if lastGuard == nil || !reflect.DeepEqual(g, *lastGuard) {
				if gerr := o.d.Guard(g); gerr != nil {
					d.Problems = append(d.Problems, gerr.Error())
					lastGuard = nil
				} else {
					lastGuard = &g
				}
			}
		}
		if o.d.MTUFile != "" {
			if werr := overlay.WriteMTUFile(o.d.MTUFile, d.WorkloadMTU(in.UplinkMTU)); werr != nil {
				d.Problems = append(d.Problems, werr.Error())
			}
		}
		if !slices.Equal(d.Warnings, lastWarnings) {
			for _, w := range d.Warnings {
				o.log.Warn("overlay", "warning", w)
			}
			lastWarnings = d.Warnings
		}
		if !slices.Equal(d.Problems, o.problems) {
			for _, p := range d.Problems {
				o.log.Warn("overlay problem", "problem", p)
			}
			o.problems = d.Problems
			o.health.SetOverlayProblems(d.Problems)
		}
		if !reflect.DeepEqual(d.Routes, lastRoutes) && o.d.AfterApply != nil {
			o.d.AfterApply()
		}
		lastRoutes = d.Routes
	}
}

// input builds overlay.Input from the snapshot; it reads the uplink MTU.
func (o *overlayLoop) input() (overlay.Input, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.synced {
		return overlay.Input{}, false
	}
	in := overlay.Input{Node: o.node, IPIPAvailable: o.d.IPIPAvailable}
	var felixDefault, felixNode *api.FelixConfiguration
	for _, r := range o.objects {
		switch v := r.(type) {
		case *api.Node:
			in.Nodes = append(in.Nodes, v)
		case *api.IPPool:
			in.Pools = append(in.Pools, v)
		case *api.BlockAffinity:
			if v.Spec.State != api.AffinityConfirmed {
				continue
			}
			if p, err := netip.ParsePrefix(v.Spec.CIDR); err == nil {
				in.Blocks = append(in.Blocks, overlay.Block{CIDR: p.Masked(), Node: v.Spec.Node})
			}
		case *api.FelixConfiguration:
			switch v.Name {
			case "default":
				felixDefault = v
			case "node." + o.node:
				felixNode = v
			}
		}
	}
	for _, fc := range []*api.FelixConfiguration{felixDefault, felixNode} {
		if fc == nil {
			continue
		}
		s := &fc.Spec
		pick(&in.VXLANEnabled, s.VXLANEnabled)
		pick(&in.VXLANPort, s.VXLANPort)
		pick(&in.VXLANVNI, s.VXLANVNI)
		pick(&in.VXLANMTU, s.VXLANMTU)
		pick(&in.VXLANMTU6, s.VXLANMTUV6)
		pick(&in.IPIPEnabled, s.IPIPEnabled)
		pick(&in.IPIPMTU, s.IPIPMTU)
	}
	// Borrowed addresses: a remote workload outside every block of its
	// own host is routed by itself.
	owned := map[string][]netip.Prefix{}
	for _, b := range in.Blocks {
		owned[b.Node] = append(owned[b.Node], b.CIDR)
	}
	for _, w := range o.weps {
		for _, a := range w.ips {
			if !insideAny(a, owned[w.node]) {
				in.Blocks = append(in.Blocks, overlay.Block{CIDR: netip.PrefixFrom(a, a.BitLen()), Node: w.node})
			}
		}
	}
	sort.Slice(in.Blocks, func(i, j int) bool {
		if c := in.Blocks[i].CIDR.Addr().Compare(in.Blocks[j].CIDR.Addr()); c != 0 {
			return c < 0
		}
		return in.Blocks[i].CIDR.Bits() < in.Blocks[j].CIDR.Bits()
	})
	sort.Slice(in.Nodes, func(i, j int) bool { return in.Nodes[i].Name < in.Nodes[j].Name })
	var host []netip.Addr
	for _, n := range in.Nodes {
		if n.Name == o.node && n.Spec.BGP != nil {
			for _, s := range []string{n.Spec.BGP.IPv4Address, n.Spec.BGP.IPv6Address} {
				if p, err := netip.ParsePrefix(s); err == nil {
					host = append(host, p.Addr())
				}
			}
		}
	}
	if o.d.Links != nil {
		if mtu, err := overlay.UplinkMTU(o.d.Links, host, "cali"); err == nil {
			in.UplinkMTU = mtu
		} else {
			o.log.Debug("uplink MTU", "err", err)
		}
	}
	return in, true
}

// pick lets a node-specific setting override the default one.
func pick[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// tunnelHandle names the IPAM handle of a host's tunnel address (Calico's).
func tunnelHandle(node string, v6 bool) string {
	if v6 {
		return "vxlan-v6-tunnel-addr-" + node
	}
	return "vxlan-tunnel-addr-" + node
}

// tunnelMAC derives a stable, locally administered unicast MAC from the
// node's name, so that a restarted host keeps the MAC its peers know.
func tunnelMAC(node string, v6 bool) net.HardwareAddr {
	sum := sha256.Sum256([]byte(tunnelHandle(node, v6)))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// ensureTunnels gives this host a tunnel address (from a VXLAN pool that
// allows Tunnel use) and MAC for each family that needs one, writes them
// into its Node, and releases them when no longer needed.
func (o *overlayLoop) ensureTunnels(ctx context.Context, in overlay.Input, d overlay.Desired) error {
	var self *api.Node
	for _, n := range in.Nodes {
		if n.Name == o.node {
			self = n
		}
	}
	if self == nil || o.d.IPAM == nil {
		return nil
	}
	n := *self
	spec := n.Spec
	if spec.BGP != nil {
		// A copy: self is the syncer's cached object, and the comparison
		// below must see what changed.
		b := *spec.BGP
		spec.BGP = &b
	}
	var errs []error
	for _, v6 := range []bool{false, true} {
		need, addr, mac := d.NeedTunnel4, &spec.IPv4VXLANTunnelAddr, &spec.VXLANTunnelMACAddr
		bits := 32
		if v6 {
			need, addr, mac, bits = d.NeedTunnel6, &spec.IPv6VXLANTunnelAddr, &spec.VXLANTunnelMACAddrV6, 128
		}
		pools := tunnelPools(in.Pools, bits)
		cur, _ := netip.ParseAddr(*addr)
		valid := cur.IsValid() && slices.ContainsFunc(pools, func(p netip.Prefix) bool { return p.Contains(cur) })
		switch {
		case need && !valid:
			if len(pools) == 0 {
				errs = append(errs, fmt.Errorf("no IPv%d VXLAN pool allows Tunnel use: this host gets no tunnel address", map[bool]int{false: 4, true: 6}[v6]))
				continue
			}
			if cur.IsValid() {
				_ = o.d.IPAM.ReleaseByHandle(ctx, tunnelHandle(o.node, v6))
			}
			args := ipam.AutoAssignArgs{Handle: tunnelHandle(o.node, v6), Node: o.node, ReuseHandle: true,
				Attrs: map[string]string{"node": o.node, "type": "vxlanTunnelAddress"}}
			var names []string
			for _, p := range in.Pools {
				c, err := netip.ParsePrefix(p.Spec.CIDR)
				if err == nil && c.Addr().BitLen() == bits && slices.Contains(pools, c.Masked()) {
					names = append(names, p.Name)
				}
			}
			if v6 {
				args.Num6, args.IPv6Pools = 1, names
			} else {
				args.Num4, args.IPv4Pools = 1, names
			}
			res, err := o.d.IPAM.AutoAssign(ctx, args)
			if err != nil {
				errs = append(errs, fmt.Errorf("allocating the tunnel address: %w", err))
				continue
			}
			got := append(res.IPv4, res.IPv6...)
			if len(got) == 0 {
				errs = append(errs, errors.New("allocating the tunnel address: IPAM returned none"))
				continue
			}
			*addr = got[0].String()
		case !need && cur.IsValid():
			if err := o.d.IPAM.ReleaseByHandle(ctx, tunnelHandle(o.node, v6)); err != nil {
				errs = append(errs, fmt.Errorf("releasing the tunnel address %s: %w", cur, err))
				continue
			}
			*addr, *mac = "", ""
		}
		if need && *mac == "" {
			*mac = tunnelMAC(o.node, v6).String()
		}
	}
	if err := o.ensureIPIPTunnel(ctx, in, d, &spec); err != nil {
		errs = append(errs, err)
	}
	if reflect.DeepEqual(spec, self.Spec) {
		return errors.Join(errs...)
	}
	n.Spec = spec
	if _, err := o.ds.Update(ctx, &n); err != nil {
		// A conflict means someone else wrote the Node: the watch brings
		// it back and the next round tries again (the handle is reused).
		errs = append(errs, fmt.Errorf("writing tunnel addresses into node %q: %w", o.node, err))
	}
	return errors.Join(errs...)
}

// ensureIPIPTunnel gives this host an IPIP tunnel address (Node
// spec.bgp.ipv4IPIPTunnelAddr) from an IPIP pool that allows Tunnel use
// while one is needed, and releases it after.
func (o *overlayLoop) ensureIPIPTunnel(ctx context.Context, in overlay.Input, d overlay.Desired, spec *api.NodeSpec) error {
	var cur netip.Addr
	if spec.BGP != nil {
		cur, _ = netip.ParseAddr(spec.BGP.IPv4IPIPTunnelAddr)
	}
	handle := "ipip-tunnel-addr-" + o.node
	var names []string
	var pools []netip.Prefix
	for _, p := range in.Pools {
		c, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || !c.Addr().Is4() || p.Spec.Disabled || p.Spec.IPIPMode != api.EncapAlways && p.Spec.IPIPMode != api.EncapCrossSubnet {
			continue
		}
		if len(p.Spec.AllowedUses) > 0 && !slices.Contains(p.Spec.AllowedUses, api.AllowedUseTunnel) {
			continue
		}
		names, pools = append(names, p.Name), append(pools, c.Masked())
	}
	valid := cur.IsValid() && slices.ContainsFunc(pools, func(p netip.Prefix) bool { return p.Contains(cur) })
	switch {
	case d.NeedTunnelIPIP && !valid:
		if len(names) == 0 {
			return errors.New("no IPIP pool allows Tunnel use: this host gets no IPIP tunnel address")
		}
		if cur.IsValid() {
			_ = o.d.IPAM.ReleaseByHandle(ctx, handle)
		}
		res, err := o.d.IPAM.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: handle, Node: o.node, ReuseHandle: true,
			IPv4Pools: names, Attrs: map[string]string{"node": o.node, "type": "ipipTunnelAddress"}})
		if err != nil {
			return fmt.Errorf("allocating the IPIP tunnel address: %w", err)
		}
		if len(res.IPv4) == 0 {
			return errors.New("allocating the IPIP tunnel address: IPAM returned none")
		}
		if spec.BGP == nil {
			spec.BGP = &api.NodeBGPSpec{}
		}
		spec.BGP.IPv4IPIPTunnelAddr = res.IPv4[0].String()
	case !d.NeedTunnelIPIP && cur.IsValid():
		if err := o.d.IPAM.ReleaseByHandle(ctx, handle); err != nil {
			return fmt.Errorf("releasing the IPIP tunnel address %s: %w", cur, err)
		}
		spec.BGP.IPv4IPIPTunnelAddr = ""
	}
	return nil
}

// releaseGone releases the tunnel addresses of deleted Nodes: they go
// with the Node. A failure is retried next round.
func (o *overlayLoop) releaseGone(ctx context.Context) {
	o.mu.Lock()
	gone := o.gone
	o.gone = nil
	o.mu.Unlock()
	if o.d.IPAM == nil {
		return
	}
	var retry []string
	for _, n := range gone {
		for _, h := range []string{tunnelHandle(n, false), tunnelHandle(n, true), "ipip-tunnel-addr-" + n} {
			if err := o.d.IPAM.ReleaseByHandle(ctx, h); err != nil {
				o.log.Warn("releasing a deleted node's tunnel address", "node", n, "err", err)
				retry = append(retry, n)
				break
			}
		}
	}
	if len(retry) > 0 {
		o.mu.Lock()
		o.gone = append(o.gone, retry...)
		o.mu.Unlock()
	}
}

// tunnelPools are the enabled VXLAN pools of one family that allow Tunnel.
func tunnelPools(pools []*api.IPPool, bits int) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range pools {
		c, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || c.Addr().BitLen() != bits || p.Spec.Disabled {
			continue
		}
		if p.Spec.VXLANMode != api.EncapAlways && p.Spec.VXLANMode != api.EncapCrossSubnet {
			continue
		}
		if len(p.Spec.AllowedUses) > 0 && !slices.Contains(p.Spec.AllowedUses, api.AllowedUseTunnel) {
			continue
		}
		out = append(out, c.Masked())
	}
	return out
}
