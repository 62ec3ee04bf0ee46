package ipam

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/selector"
)

// Clock is the time IPAM waits on between retries; tests may replace it.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config tunes a Client. The zero value is ready to use.
type Config struct {
	// Logger receives debug messages about claims and lost races (nil:
	// discarded).
	Logger *slog.Logger
	// Clock times the backoff between retries (nil: real time).
	Clock Clock
	// MaxAttempts bounds how often one write lost to a concurrent writer
	// is retried before the operation fails with the datastore's
	// ErrConflict (default 40).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the jittered exponential backoff
	// between attempts (defaults 1ms and 100ms).
	BackoffBase, BackoffMax time.Duration
}

// Client implements Interface on a datastore with nothing but
// single-resource compare-and-swap writes: no lock, no leader. Every
// change reads a resource, edits it and writes it back conditionally on
// the resourceVersion read; a writer that lost a race reads again after a
// short jittered backoff. Safe for concurrent use, by any number of
// processes on any number of hosts.
type Client struct {
	ds          datastore.Interface
	log         *slog.Logger
	clock       Clock
	maxAttempts int
	base, max   time.Duration

	mu  sync.Mutex
	rnd *rand.Rand
	// hints remembers, per node and family, the block this client last
	// allocated from, so that the next request tries it before listing
	// the node's affinities (a list that grows with the cluster). It is
	// only a guess: the block is read and its affinity checked as always.
	hints map[hintKey]netip.Prefix
}

type hintKey struct {
	node   string
	bitLen int
}

func (c *Client) hint(node string, bitLen int) netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hints[hintKey{node, bitLen}]
}

func (c *Client) setHint(node string, cidr netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hints[hintKey{node, cidr.Addr().BitLen()}] = cidr
}

// Hint is the block this client last allocated from for node in the
// family of bitLen (32 or 128), if any: a short-lived caller (the CNI
// plugin, one process per command) keeps it for the next one.
func (c *Client) Hint(node string, bitLen int) netip.Prefix { return c.hint(node, bitLen) }

// SetHint tells the client which block node allocated from last (Hint of
// an earlier client), so that a request for one family reads that block
// while it reads the settings, rather than listing the node's affinities
// first. A wrong hint costs a round trip: the block is read and its
// affinity checked as always.
func (c *Client) SetHint(node string, block netip.Prefix) {
	if block.IsValid() && block.Masked() == block {
		c.setHint(node, block)
	}
}

var _ Interface = (*Client)(nil)

// New returns a Client on ds.
func New(ds datastore.Interface, cfg Config) *Client {
	c := &Client{ds: ds, log: cfg.Logger, clock: cfg.Clock, maxAttempts: cfg.MaxAttempts,
		base: cfg.BackoffBase, max: cfg.BackoffMax,
		rnd:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		hints: map[hintKey]netip.Prefix{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "ipam")
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = 40
	}
	if c.base <= 0 {
		c.base = time.Millisecond
	}
	if c.max <= 0 {
		c.max = 100 * time.Millisecond
	}
	return c
}

// backoff waits before attempt n (0 is the first retry): a random time up
// to base*2^n, capped, so that racing writers spread out.
func (c *Client) backoff(ctx context.Context, n int) error {
	d := c.base << min(n, 16)
	if d > c.max || d <= 0 {
		d = c.max
	}
	c.mu.Lock()
	d = time.Duration(c.rnd.Int64N(int64(d)) + 1)
	c.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.clock.After(d):
		return nil
	}
}

// retry runs fn until it succeeds or fails with something other than a
// lost race (ErrConflict, or ErrAlreadyExists/ErrNotFound when fn asks
// for a retry by returning errRetry).
func (c *Client) retry(ctx context.Context, what string, fn func() error) error {
	var err error
	for attempt := range c.maxAttempts {
		if attempt > 0 {
			if berr := c.backoff(ctx, attempt-1); berr != nil {
				return fmt.Errorf("%s: %w (after %d attempts: %v)", what, berr, attempt, err)
			}
		}
		err = fn()
		if err == nil || !(errors.Is(err, datastore.ErrConflict) || errors.Is(err, errRetry)) {
			return err
		}
		c.log.Debug("lost a race, retrying", "op", what, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("%s: gave up after %d attempts under contention: %w", what, c.maxAttempts, err)
}

// errRetry asks retry for another attempt: the state read was changed
// under us in a way a conditional write does not show (a create raced a
// delete).
var errRetry = errors.New("state changed while being read")

// pool is an IPPool as IPAM uses it.
type pool struct {
	name      string
	cidr      netip.Prefix
	blockBits int
	spec      *api.IPPoolSpec
}

func (p pool) String() string { return fmt.Sprintf("%q (%s)", p.name, p.cidr) }

// snapshot is what one request needs to know besides blocks: read once
// per request, so that a pool, reservation or setting changed a moment
// ago is honoured at once (a cache could hand out a just-reserved address).
type snapshot struct {
	cfg        api.IPAMConfigurationSpec
	pools      []pool // every pool, valid CIDR, sorted by name
	reserved   reservations
	nodeLabels map[string]string
	nodeFound  bool
}

// load reads the snapshot; node "" skips the Node.
func (c *Client) load(ctx context.Context, node string) (*snapshot, error) {
	s := &snapshot{}
	var wg sync.WaitGroup
	var errCfg, errPools, errRes, errNode error
	wg.Go(func() {
		r, err := c.ds.Get(ctx, api.Key{Kind: "IPAMConfiguration", Name: api.IPAMConfigName})
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			cfg := &api.IPAMConfiguration{}
			cfg.SetDefaults()
			s.cfg = cfg.Spec
		case err != nil:
			errCfg = err
		default:
			cfg, ok := r.(*api.IPAMConfiguration)
			if !ok {
				errCfg = errUnexpectedKind(r)
				return
			}
			cfg.SetDefaults()
			s.cfg = cfg.Spec
		}
	})
	wg.Go(func() {
		res, err := c.ds.List(ctx, datastore.ListOptions{Kind: "IPPool"})
		if err != nil {
			errPools = err
			return
		}
		for _, r := range res.Items {
			p, ok := r.(*api.IPPool)
			if !ok {
				continue
			}
			p.SetDefaults()
			cidr, err := netip.ParsePrefix(p.Spec.CIDR)
			if err != nil || cidr.Masked() != cidr || cidr.Bits() > p.Spec.BlockSize {
				c.log.Warn("ignoring IP pool with an unusable CIDR", "pool", p.Name, "cidr", p.Spec.CIDR)
				continue
			}
			s.pools = append(s.pools, pool{name: p.Name, cidr: cidr, blockBits: p.Spec.BlockSize, spec: &p.Spec})
		}
	})
	wg.Go(func() {
		res, err := c.ds.List(ctx, datastore.ListOptions{Kind: "IPReservation"})
		if err != nil {
			errRes = err
			return
		}
		for _, r := range res.Items {
			rr, ok := r.(*api.IPReservation)
			if !ok {
				continue
			}
			for _, cidr := range rr.Spec.ReservedCIDRs {
				if p, err := parseCIDROrAddr(cidr); err == nil {
					s.reserved = append(s.reserved, p.Masked())
				}
			}
		}
	})
	if node != "" {
		wg.Go(func() {
			r, err := c.ds.Get(ctx, api.Key{Kind: "Node", Name: node})
			switch {
			case errors.Is(err, datastore.ErrNotFound):
			case err != nil:
				errNode = err
			default:
				s.nodeFound = true
				s.nodeLabels = r.GetObjectMeta().Labels
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errCfg, errPools, errRes, errNode); err != nil {
		return nil, fmt.Errorf("reading IPAM settings: %w", err)
	}
	return s, nil
}

func parseCIDROrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// selectsNode applies the pool's nodeSelector. A node with no Node
// resource is only selected by all(): nothing is known about its labels.
func (s *snapshot) selectsNode(p pool) (bool, error) {
	sel, err := selector.Parse(p.spec.NodeSelector)
	if err != nil {
		return false, fmt.Errorf("pool %s: nodeSelector %q: %w", p, p.spec.NodeSelector, err)
	}
	if !s.nodeFound {
		return sel.String() == "all()", nil
	}
	return sel.Evaluate(s.nodeLabels), nil
}

func allowsWorkloads(p pool) bool {
	return len(p.spec.AllowedUses) == 0 || slices.Contains(p.spec.AllowedUses, api.AllowedUseWorkload)
}

// poolsFor picks the pools one family may be allocated from on node:
// those requested (by name or CIDR), or every enabled automatic pool;
// either way only pools whose nodeSelector selects the node.
func (s *snapshot) poolsFor(node string, bitLen int, requested []string) ([]pool, error) {
	var cands []pool
	if len(requested) > 0 {
		for _, want := range requested {
			i := slices.IndexFunc(s.pools, func(p pool) bool {
				if p.name == want {
					return true
				}
				c, err := netip.ParsePrefix(want)
				return err == nil && c.Masked() == p.cidr
			})
			switch {
			case i < 0:
				return nil, fmt.Errorf("%w: requested pool %q does not exist", ErrNoPool, want)
			case s.pools[i].cidr.Addr().BitLen() != bitLen:
				return nil, fmt.Errorf("%w: requested pool %s is not an IPv%d pool", ErrNoPool, s.pools[i], family(bitLen))
			case s.pools[i].spec.Disabled:
				return nil, fmt.Errorf("%w: requested pool %s is disabled", ErrNoPool, s.pools[i])
			}
			if !slices.ContainsFunc(cands, func(p pool) bool { return p.name == s.pools[i].name }) {
				cands = append(cands, s.pools[i])
			}
		}
	} else {
		for _, p := range s.pools {
			manual := p.spec.AssignmentMode != nil && *p.spec.AssignmentMode == api.AssignmentManual
			if p.cidr.Addr().BitLen() == bitLen && !p.spec.Disabled && !manual && allowsWorkloads(p) {
				cands = append(cands, p)
			}
		}
	}
	var out []pool
	for _, p := range cands {
		ok, err := s.selectsNode(p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		what := fmt.Sprintf("no enabled IPv%d pool", family(bitLen))
		if len(requested) > 0 {
			what = fmt.Sprintf("none of the requested pools %s", strings.Join(requested, ", "))
		}
		if !s.nodeFound {
			return nil, fmt.Errorf("%w: %s selects node %q (it has no Node resource, so only pools with nodeSelector all() apply)", ErrNoPool, what, node)
		}
		return nil, fmt.Errorf("%w: %s selects node %q", ErrNoPool, what, node)
	}
	return out, nil
}

func family(bitLen int) int {
	if bitLen == 32 {
		return 4
	}
	return 6
}

// poolOfBlock finds the pool a block belongs to.
func poolOfBlock(pools []pool, cidr netip.Prefix) (pool, bool) {
	for _, p := range pools {
		if p.blockBits == cidr.Bits() && p.cidr.Contains(cidr.Addr()) {
			return p, true
		}
	}
	return pool{}, false
}

// poolOfAddr finds the pool that holds a.
func poolOfAddr(pools []pool, a netip.Addr) (pool, bool) {
	for _, p := range pools {
		if p.cidr.Contains(a) {
			return p, true
		}
	}
	return pool{}, false
}

// nodeAffinities lists the affinities of node.
func (c *Client) nodeAffinities(ctx context.Context, node string) ([]*api.BlockAffinity, error) {
	res, err := c.ds.List(ctx, datastore.ListOptions{Kind: "BlockAffinity", FieldSelector: "spec.node=" + node})
	if err != nil {
		return nil, fmt.Errorf("listing the block affinities of node %q: %w", node, err)
	}
	out := make([]*api.BlockAffinity, 0, len(res.Items))
	for _, r := range res.Items {
		if a, ok := r.(*api.BlockAffinity); ok && a.Spec.Node == node {
			out = append(out, a)
		}
	}
	return out, nil
}

// getBlock reads one block; (nil, nil) when it does not exist.
func (c *Client) getBlock(ctx context.Context, cidr netip.Prefix) (*block, error) {
	r, err := c.ds.Get(ctx, api.Key{Kind: "IPAMBlock", Name: api.IPAMBlockName(cidr)})
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return wrapBlock(r)
}

// listBlocks reads every block.
func (c *Client) listBlocks(ctx context.Context) ([]*block, error) {
	res, err := c.ds.List(ctx, datastore.ListOptions{Kind: "IPAMBlock"})
	if err != nil {
		return nil, fmt.Errorf("listing IPAM blocks: %w", err)
	}
	out := make([]*block, 0, len(res.Items))
	for _, r := range res.Items {
		b, err := wrapBlock(r)
		if err != nil {
			c.log.Warn("skipping unreadable IPAM block", "name", r.GetObjectMeta().Name, "err", err)
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// writeBlock stores b conditionally on the version it was read at (a new
// block is created); an empty block without affinity is deleted instead,
// since nobody owns or uses it.
func (c *Client) writeBlock(ctx context.Context, b *block) error {
	var err error
	switch {
	case b.ResourceVersion == "":
		_, err = c.ds.Create(ctx, b.IPAMBlock)
	case b.Spec.Affinity == nil && b.inUse() == 0:
		_, err = c.ds.Delete(ctx, api.KeyOf(b.IPAMBlock), b.ResourceVersion)
		if errors.Is(err, datastore.ErrNotFound) {
			err = errRetry
		}
		if err == nil {
			c.log.Debug("deleted empty unaffine block", "cidr", b.cidr)
		}
	default:
		_, err = c.ds.Update(ctx, b.IPAMBlock)
		if errors.Is(err, datastore.ErrNotFound) {
			err = errRetry // deleted since we read it: read again
		}
	}
	return err
}

// changeHandle applies delta (block CIDR → change in count) to a handle,
// creating it when missing and deleting it when it holds nothing.
func (c *Client) changeHandle(ctx context.Context, handle string, delta map[string]int) error {
	key := api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(handle)}
	// A workload's first allocation creates its handle: try that in one
	// write before reading.
	if fresh := positive(delta); fresh != nil {
		_, err := c.ds.Create(ctx, &api.IPAMHandle{TypeMeta: api.TypeMeta{Kind: "IPAMHandle", APIVersion: api.APIVersion},
			ObjectMeta: api.ObjectMeta{Name: key.Name}, Spec: api.IPAMHandleSpec{HandleID: handle, Block: fresh}})
		if !errors.Is(err, datastore.ErrAlreadyExists) {
			return err
		}
	}
	return c.retry(ctx, fmt.Sprintf("updating IPAM handle %q", handle), func() error {
		r, err := c.ds.Get(ctx, key)
		var h *api.IPAMHandle
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			h = &api.IPAMHandle{TypeMeta: api.TypeMeta{Kind: "IPAMHandle", APIVersion: api.APIVersion},
				ObjectMeta: api.ObjectMeta{Name: key.Name}, Spec: api.IPAMHandleSpec{HandleID: handle}}
		case err != nil:
			return err
		default:
			var ok bool
			if h, ok = r.(*api.IPAMHandle); !ok {
				return errUnexpectedKind(r)
			}
			if h.Spec.HandleID != handle {
				return fmt.Errorf("handle %q and %q share the resource name %q", handle, h.Spec.HandleID, key.Name)
			}
		}
		if h.Spec.Block == nil {
			h.Spec.Block = map[string]int{}
		}
		for k, d := range delta {
			if n := h.Spec.Block[k] + d; n > 0 {
				h.Spec.Block[k] = n
			} else {
				delete(h.Spec.Block, k)
			}
		}
		switch {
		case h.ResourceVersion == "" && len(h.Spec.Block) == 0:
			return nil
		case h.ResourceVersion == "":
			_, err = c.ds.Create(ctx, h)
			if errors.Is(err, datastore.ErrAlreadyExists) {
				return errRetry
			}
		case len(h.Spec.Block) == 0:
			_, err = c.ds.Delete(ctx, key, h.ResourceVersion)
			if errors.Is(err, datastore.ErrNotFound) {
				return nil
			}
		default:
			_, err = c.ds.Update(ctx, h)
			if errors.Is(err, datastore.ErrNotFound) {
				return errRetry
			}
		}
		return err
	})
}

// positive returns delta when every change is an increase, else nil.
func positive(delta map[string]int) map[string]int {
	for _, d := range delta {
		if d <= 0 {
			return nil
		}
	}
	if len(delta) == 0 {
		return nil
	}
	return delta
}

// startOffset is where a node starts looking for a free block in a pool
// of n blocks: a hash of the node name, so that different hosts spread
// over the pool (and rarely race for one block) while two processes on
// the same host agree on the same block.
func startOffset(node string, n uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	return h.Sum64() % n
}
