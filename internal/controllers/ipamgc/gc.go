package ipamgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/servalnet/serval/internal/ipam"
)

// IPAM is what the collector needs of internal/ipam's Client.
type IPAM interface {
	State(ctx context.Context) (*ipam.State, error)
	ReleaseIPHeldBy(ctx context.Context, ip netip.Addr, handle string) (bool, error)
	ReleaseEmptyBlock(ctx context.Context, cidr netip.Prefix, node string) (bool, error)
	ReleaseNode(ctx context.Context, node string) error
}

var _ IPAM = (*ipam.Client)(nil)

// Defaults of Config.
const (
	DefaultGracePeriod  = 15 * time.Minute
	DefaultScanInterval = time.Minute
	DefaultWorkers      = 2
)

// Config sets up a Controller. IPAM and Kube are required.
type Config struct {
	IPAM IPAM
	Kube kubernetes.Interface
	// GracePeriod is how long an address, or a deleted node, stays a
	// candidate before it is given back (default 15 minutes).
	GracePeriod time.Duration
	// ScanInterval is the time between two reads of the IPAM state
	// (default 1 minute); a pod or node deletion also starts one. An
	// empty block is given back at the second scan in a row that finds
	// it empty.
	ScanInterval time.Duration
	// Workers run releases in parallel (default 2).
	Workers int
	// Clock is the time the collector goes by (default: real time).
	Clock  clock.WithTicker
	Logger *slog.Logger
	// Metrics receives the collector's figures (nil: fresh, unregistered).
	Metrics *Metrics
}

// Controller is the IPAM garbage collector. See the package comment.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	m       *Metrics
	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	nodes   cache.SharedIndexInformer
	queue   workqueue.TypedRateLimitingInterface[item]
	kick    chan struct{}

	mu     sync.Mutex
	addrs  map[addrKey]*addrCandidate
	blocks map[netip.Prefix]int // consecutive scans that found the block empty
	gone   map[string]time.Time // node → when first found without a Kubernetes Node
}

type addrKey struct {
	ip     netip.Addr
	handle string
}

type addrCandidate struct {
	pod    podRef
	since  time.Time
	reason string
}

// item is one release for the workers to try.
type item struct {
	kind   string // kindAddress, kindBlock or kindNode
	ip     netip.Addr
	handle string
	block  netip.Prefix
	node   string
}

func (it item) String() string {
	switch it.kind {
	case kindAddress:
		return fmt.Sprintf("address %s of handle %q", it.ip, it.handle)
	case kindBlock:
		return fmt.Sprintf("block %s of node %q", it.block, it.node)
	}
	return fmt.Sprintf("node %q", it.node)
}

// New checks cfg and sets up the informers; Run starts them.
func New(cfg Config) (*Controller, error) {
	if cfg.IPAM == nil || cfg.Kube == nil {
		return nil, errors.New("ipam garbage collector: an IPAM client and a Kubernetes client are required")
	}
	if cfg.GracePeriod < 0 || cfg.ScanInterval < 0 || cfg.Workers < 0 {
		return nil, fmt.Errorf("ipam garbage collector: negative grace period (%s), scan interval (%s) or workers (%d)",
			cfg.GracePeriod, cfg.ScanInterval, cfg.Workers)
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = DefaultScanInterval
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("controller", "ipam-gc"), m: cfg.Metrics,
		kick: make(chan struct{}, 1), addrs: map[addrKey]*addrCandidate{}, blocks: map[netip.Prefix]int{}, gone: map[string]time.Time{}}
	c.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0, informers.WithTransform(slim))
	c.pods = c.factory.Core().V1().Pods().Informer()
	c.nodes = c.factory.Core().V1().Nodes().Informer()
	if err := c.pods.AddIndexers(cache.Indexers{byNode: podNode}); err != nil {
		return nil, fmt.Errorf("ipam garbage collector: indexing pods by node: %w", err)
	}
	kick := cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { c.Kick() }}
	if _, err := c.pods.AddEventHandler(kick); err != nil {
		return nil, fmt.Errorf("ipam garbage collector: watching pods: %w", err)
	}
	if _, err := c.nodes.AddEventHandler(kick); err != nil {
		return nil, fmt.Errorf("ipam garbage collector: watching nodes: %w", err)
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[item](time.Second, 5*time.Minute),
		workqueue.TypedRateLimitingQueueConfig[item]{Name: "ipam-gc", Clock: cfg.Clock})
	return c, nil
}

// Kick asks for a scan now (a pod or node was deleted).
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run collects until ctx ends: it starts the informers, waits for their
// caches, then scans every ScanInterval (and on every deletion) while the
// workers release what has waited out its grace period.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.start(ctx); err != nil {
		return err
	}
	defer c.factory.Shutdown()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.queue.ShutDown()
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	t := c.cfg.Clock.NewTicker(c.cfg.ScanInterval)
	defer t.Stop()
	c.log.Info("collecting", "grace", c.cfg.GracePeriod, "interval", c.cfg.ScanInterval)
	// A deletion starts a scan early, but no sooner than a quarter of the
	// interval after the last: under churn, scans (each a read of every
	// block) stay bounded.
	gap := c.cfg.ScanInterval / 4
	for {
		last := c.cfg.Clock.Now()
		if err := c.scan(ctx); err != nil && ctx.Err() == nil {
			c.m.Errors.WithLabelValues("scan").Inc()
			c.log.Warn("scan failed", "err", err)
		}
		if !c.wait(ctx, t.C(), last, gap) {
			return nil
		}
	}
}

// wait returns at the next tick, or at a kick gap after last; false when
// ctx ends.
func (c *Controller) wait(ctx context.Context, tick <-chan time.Time, last time.Time, gap time.Duration) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return true
		case <-c.kick:
			if c.cfg.Clock.Since(last) >= gap {
				return true
			}
		}
	}
}

// start runs the informers and waits for their caches.
func (c *Controller) start(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	for typ, ok := range c.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("ipam garbage collector: the %v cache did not sync: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

// cachedPod is the pod namespace/name in the informer's cache, nil if none.
func (c *Controller) cachedPod(ref podRef) *corev1.Pod {
	obj, ok, err := c.pods.GetStore().GetByKey(ref.Namespace + "/" + ref.Name)
	if err != nil || !ok {
		return nil
	}
	p, _ := obj.(*corev1.Pod)
	return p
}

func (c *Controller) nodeCached(name string) bool {
	_, ok, err := c.nodes.GetStore().GetByKey(name)
	return err == nil && ok
}

// scan reads the IPAM state, updates the candidates and queues what has
// waited out its grace period (or, for a block, its second empty scan).
func (c *Controller) scan(ctx context.Context) error {
	st, err := c.cfg.IPAM.State(ctx)
	if err != nil {
		return fmt.Errorf("reading the IPAM state: %w", err)
	}
	now := c.cfg.Clock.Now()
	var due []item
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		for _, it := range due {
			c.queue.Add(it)
		}
	}()

	// Addresses.
	seen := map[addrKey]bool{}
	busy := map[string]bool{} // nodes whose blocks hold an address a pod may be using
	for _, a := range st.Allocations {
		ref, ok := podOf(a.Attrs)
		if !ok {
			continue // not a pod's (a tunnel address stays allocated through ReleaseNode)
		}
		k := addrKey{a.IP, a.Handle}
		v := judge(ref, a.IP, c.cachedPod(ref))
		if !v.Leaked {
			busy[a.BlockNode] = true
			if _, was := c.addrs[k]; was {
				c.log.Info("address no longer a candidate", "ip", a.IP, "handle", a.Handle, "pod", ref, "why", v.Reason)
			}
			delete(c.addrs, k)
			continue
		}
		seen[k] = true
		cand := c.addrs[k]
		if cand == nil {
			cand = &addrCandidate{pod: ref, since: now, reason: v.Reason}
			c.addrs[k] = cand
			c.log.Info("address is a candidate for release", "ip", a.IP, "handle", a.Handle, "pod", ref, "node", ref.Node,
				"why", v.Reason, "grace", c.cfg.GracePeriod)
		}
		if now.Sub(cand.since) >= c.cfg.GracePeriod {
			due = append(due, item{kind: kindAddress, ip: a.IP, handle: a.Handle})
		}
	}
	for k := range c.addrs {
		if !seen[k] {
			delete(c.addrs, k) // released meanwhile (CNI DEL) or by us
		}
	}

	// Empty blocks: per node and address family, every block found empty
	// twice in a row is given back but one (a block in use if there is
	// one, else the lowest), so that the node keeps a block to allocate
	// from. Nodes without a Kubernetes Node are left to the node clean-up.
	type group struct {
		node string
		bits int
	}
	groups := map[group][]ipam.BlockUsage{}
	var order []group
	for _, b := range st.Blocks {
		if b.Node == "" || !c.nodeCached(b.Node) {
			continue
		}
		g := group{b.Node, b.CIDR.Addr().BitLen()}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], b)
	}
	empty := map[netip.Prefix]bool{}
	blockCands := 0
	for _, g := range order {
		bs := groups[g]
		keep := bs[0].CIDR
		for _, b := range bs {
			if b.InUse > 0 {
				keep = b.CIDR
				break
			}
		}
		for _, b := range bs {
			if b.InUse > 0 {
				continue
			}
			empty[b.CIDR] = true
			c.blocks[b.CIDR]++
			if b.CIDR == keep {
				continue
			}
			blockCands++
			if c.blocks[b.CIDR] >= 2 {
				due = append(due, item{kind: kindBlock, block: b.CIDR, node: b.Node})
			}
		}
	}
	for cidr := range c.blocks {
		if !empty[cidr] {
			delete(c.blocks, cidr)
		}
	}

	// Nodes that hold affinities but have no Kubernetes Node.
	affine := map[string]bool{}
	for _, n := range st.AffinityNodes {
		affine[n] = true
		if c.nodeCached(n) {
			delete(c.gone, n)
			continue
		}
		since, ok := c.gone[n]
		if !ok {
			since = now
			c.gone[n] = now
			c.log.Info("node without a Kubernetes Node holds IPAM blocks: candidate for release", "node", n, "grace", c.cfg.GracePeriod)
		}
		// Not while its blocks hold an address in use: a host whose
		// Serval node name is not its Kubernetes Node's name would
		// otherwise lose its blocks while its pods run.
		if now.Sub(since) >= c.cfg.GracePeriod && !busy[n] {
			due = append(due, item{kind: kindNode, node: n})
		}
	}
	for n := range c.gone {
		if !affine[n] {
			delete(c.gone, n)
		}
	}

	c.m.Candidates.WithLabelValues(kindAddress).Set(float64(len(c.addrs)))
	c.m.Candidates.WithLabelValues(kindBlock).Set(float64(blockCands))
	c.m.Candidates.WithLabelValues(kindNode).Set(float64(len(c.gone)))
	c.m.Scans.Inc()
	return nil
}

// processNext handles one queued release; false once the queue is shut.
func (c *Controller) processNext(ctx context.Context) bool {
	it, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(it)
	if err := c.process(ctx, it); err != nil {
		if ctx.Err() != nil {
			return true
		}
		c.log.Warn("release failed, will retry", "what", it.String(), "err", err)
		c.queue.AddRateLimited(it)
		return true
	}
	c.queue.Forget(it)
	return true
}

func (c *Controller) process(ctx context.Context, it item) error {
	switch it.kind {
	case kindAddress:
		return c.releaseAddress(ctx, it)
	case kindBlock:
		return c.releaseBlock(ctx, it)
	case kindNode:
		return c.releaseNode(ctx, it)
	}
	return fmt.Errorf("unknown work item %q", it.kind)
}
