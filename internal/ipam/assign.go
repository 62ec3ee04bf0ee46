package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// maxPerRequest bounds one AutoAssign per family: far above any real
// workload's need, low enough that a typo cannot drain a pool.
const maxPerRequest = 1024

// maxScan bounds how many candidate blocks of one pool a claim looks at,
// so that a huge IPv6 pool cannot make it loop for ever.
const maxScan = 1 << 20

func checkIdentity(handle, node string) error {
	switch {
	case handle == "":
		return fmt.Errorf("%w: a handle is required", ErrInvalidArgument)
	case node == "":
		return fmt.Errorf("%w: a node is required", ErrInvalidArgument)
	}
	if msg := api.CheckDNS1123Subdomain(node); msg != "" {
		return fmt.Errorf("%w: node %q is not a valid node name: %s", ErrInvalidArgument, node, msg)
	}
	return nil
}

// AutoAssign implements Interface. Addresses come from the node's own
// blocks first, then from a block it claims, then (unless strictAffinity)
// from another host's block. It is all or nothing: when it fails, the
// addresses it took are given back, and the handle keeps only what it
// held before.
func (c *Client) AutoAssign(ctx context.Context, args AutoAssignArgs) (*AssignResult, error) {
	what := fmt.Sprintf("allocating %d IPv4 and %d IPv6 addresses for handle %q on node %q", args.Num4, args.Num6, args.Handle, args.Node)
	if err := checkIdentity(args.Handle, args.Node); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for _, n := range []int{args.Num4, args.Num6} {
		if n < 0 || n > maxPerRequest {
			return nil, fmt.Errorf("%s: %w: the number of addresses must be 0-%d", what, ErrInvalidArgument, maxPerRequest)
		}
	}
	res := &AssignResult{}
	if args.Num4 == 0 && args.Num6 == 0 {
		return res, nil
	}
	// The settings, the first block to try for each family and the
	// handle are read and written at once: each is a round trip to the
	// datastore, and none needs another's answer.
	var s *snapshot
	var loadErr error
	pre := map[int]*prefetched{}
	var affs []*api.BlockAffinity
	var affsErr error
	//
	// The handle is counted up ahead in the block the node used last (the
	// hint): creating it is also how a request with ReuseHandle learns
	// whether it existed, for one family (two would both create it). The
	// lock, if any, is then taken first, so that the handle is written
	// under it and the block read is not stale when written; it is held
	// for about as long as without the hint (one read round and the
	// block write), but the request waits for one round trip less.
	oneFamily := (args.Num4 == 0) != (args.Num6 == 0)
	needAffs := false
	for _, f := range []struct{ n, bits int }{{args.Num4, 32}, {args.Num6, 128}} {
		if f.n == 0 {
			continue
		}
		if h := c.hint(args.Node, f.bits); h.IsValid() && (!args.ReuseHandle || oneFamily) {
			pre[f.bits] = &prefetched{cidr: h}
		} else {
			needAffs = true
		}
	}
	unlock := func() {}
	defer func() { unlock() }()
	locked := false
	if args.Lock != nil && len(pre) > 0 {
		if args.TryLock == nil {
			unlock, locked = args.Lock(), true
		} else if u, ok := args.TryLock(); ok {
			unlock, locked = u, true
		} else {
			// Busy: read meanwhile, without the hint.
			clear(pre)
			needAffs = true
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { s, loadErr = c.load(ctx, args.Node) })
	for _, p := range pre {
		wg.Go(func() { c.readCounting(ctx, p, args.Handle, p.want(args)) })
	}
	if needAffs {
		wg.Go(func() { affs, affsErr = c.nodeAffinities(ctx, args.Node) })
	}
	var held *api.IPAMHandle
	readHandle := func() {
		var err error
		held, err = c.getHandle(ctx, api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(args.Handle)}, args.Handle)
		if err != nil {
			c.log.Debug("could not read the handle; allocating", "handle", args.Handle, "err", err)
		}
	}
	if args.ReuseHandle && len(pre) == 0 {
		wg.Go(readHandle)
	}
	wg.Wait()
	if args.ReuseHandle && len(pre) > 0 {
		for _, p := range pre {
			if p.counted == 0 {
				// Not created: it existed already (or the write failed).
				readHandle()
			}
		}
	}

	giveBack := func() {
		for _, p := range pre {
			c.uncount(ctx, args.Handle, p)
		}
	}
	if loadErr != nil {
		giveBack()
		return nil, fmt.Errorf("%s: %w", what, loadErr)
	}
	if held != nil && len(held.Spec.Block) > 0 {
		if res := c.reuse(ctx, args); res != nil {
			c.log.Debug("reusing the handle's addresses", "handle", args.Handle, "ipv4", res.IPv4, "ipv6", res.IPv6)
			return res, nil
		}
	}
	if args.Lock != nil && !locked {
		unlock = args.Lock()
	}
	type fam struct {
		n     int
		bits  int
		pools []string
		out   *[]netip.Addr
	}
	for _, f := range []fam{{args.Num4, 32, args.IPv4Pools, &res.IPv4}, {args.Num6, 128, args.IPv6Pools, &res.IPv6}} {
		if f.n == 0 {
			continue
		}
		got, err := c.assignFamily(ctx, s, args, f.n, f.bits, f.pools, pre[f.bits], affs, affsErr)
		*f.out = got
		if err != nil {
			giveBack()
			c.undo(ctx, args.Handle, append(slices.Clone(res.IPv4), res.IPv6...))
			fw := fmt.Sprintf("allocating %d IPv%d address(es) for handle %q on node %q", f.n, family(f.bits), args.Handle, args.Node)
			return nil, fmt.Errorf("%s: %w", fw, err)
		}
	}
	c.log.Debug("assigned", "handle", args.Handle, "node", args.Node, "ipv4", res.IPv4, "ipv6", res.IPv6)
	return res, nil
}

// reuse returns what the handle holds when it covers every family the
// request asks for, else nil.
func (c *Client) reuse(ctx context.Context, args AutoAssignArgs) *AssignResult {
	addrs, err := c.IPsByHandle(ctx, args.Handle)
	if err != nil {
		c.log.Debug("could not list the handle's addresses; allocating", "handle", args.Handle, "err", err)
		return nil
	}
	res := &AssignResult{Reused: true}
	for _, a := range addrs {
		if a.Is4() {
			res.IPv4 = append(res.IPv4, a)
		} else {
			res.IPv6 = append(res.IPv6, a)
		}
	}
	if (args.Num4 > 0 && len(res.IPv4) == 0) || (args.Num6 > 0 && len(res.IPv6) == 0) {
		return nil
	}
	return res
}

// undo gives back what a failed request took. A failure here leaves the
// addresses allocated to the handle, where the caller's ReleaseByHandle
// (CNI ADD failing is followed by DEL) frees them.
func (c *Client) undo(ctx context.Context, handle string, addrs []netip.Addr) {
	if len(addrs) == 0 {
		return
	}
	if _, err := c.release(ctx, addrs, handle); err != nil {
		c.log.Warn("could not give back addresses of a failed request", "handle", handle, "addrs", addrs, "err", err)
	}
}

// prefetched is a block read ahead of its use, together with how many
// addresses of it the handle was already counted up for (see
// readCounting).
type prefetched struct {
	cidr    netip.Prefix
	b       *block // nil: not read, or it does not exist
	err     error  // reading it failed
	counted int    // the handle already counts this many in the block
}

// want is how many addresses of p's family the request asks for.
func (p *prefetched) want(args AutoAssignArgs) int {
	if p.cidr.Addr().Is4() {
		return args.Num4
	}
	return args.Num6
}

// readCounting reads p's block and, at the same time, creates the handle
// counting n addresses in it, as the allocation will if the block has
// room. Counting ahead is as safe as counting just before the block write
// (allocFromBlock): the handle is written before the block either way,
// and a handle that over-counts only makes release look at the block. A
// handle that already exists is left to the usual read and update.
func (c *Client) readCounting(ctx context.Context, p *prefetched, handle string, n int) {
	var wg sync.WaitGroup
	wg.Go(func() {
		p.b, p.err = c.getBlock(ctx, p.cidr)
	})
	key := api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(handle)}
	_, err := c.ds.Create(ctx, &api.IPAMHandle{TypeMeta: api.TypeMeta{Kind: "IPAMHandle", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: key.Name}, Spec: api.IPAMHandleSpec{HandleID: handle, Block: map[string]int{p.cidr.String(): n}}})
	if err == nil {
		p.counted = n
	}
	wg.Wait()
}

// uncount takes back what p counted ahead and no allocation used.
func (c *Client) uncount(ctx context.Context, handle string, p *prefetched) {
	if p == nil || p.counted <= 0 {
		return
	}
	if err := c.changeHandle(ctx, handle, map[string]int{p.cidr.String(): -p.counted}); err != nil {
		c.log.Warn("could not correct a handle's count", "handle", handle, "cidr", p.cidr, "err", err)
		return
	}
	p.counted = 0
}

// assignFamily allocates n addresses of one family. pre is the block this
// client used last for the node, read ahead (nil when there is none);
// affs are the node's affinities when they were listed ahead.
func (c *Client) assignFamily(ctx context.Context, s *snapshot, args AutoAssignArgs, n, bitLen int, requested []string,
	pre *prefetched, affs []*api.BlockAffinity, affsErr error) ([]netip.Addr, error) {
	pools, err := s.poolsFor(args.Node, bitLen, requested)
	if err != nil {
		return nil, err
	}
	var got []netip.Addr
	take := func(cidr netip.Prefix, affineTo string, p *prefetched) error {
		addrs, err := c.allocFromBlock(ctx, cidr, n-len(got), args, s.reserved, affineTo, p)
		got = append(got, addrs...)
		if len(addrs) > 0 && affineTo != "" {
			c.setHint(affineTo, cidr)
		}
		return err
	}

	// 0. The block this client used last for the node, if it still
	// belongs to the node and has room: the common case, in one read.
	var hinted netip.Prefix
	if pre != nil {
		hinted = pre.cidr
		if _, ok := poolOfBlock(pools, hinted); ok {
			if err := take(hinted, args.Node, pre); err != nil || len(got) == n {
				return got, err
			}
		}
		c.uncount(ctx, args.Handle, pre)
	}

	// 1. The node's own blocks.
	if pre != nil || affsErr != nil {
		// Listed ahead only when there was no hint; a failed list is
		// worth one more try.
		affs, err = c.nodeAffinities(ctx, args.Node)
		if err != nil {
			return got, err
		}
	}
	first := true
	slices.SortFunc(affs, func(a, b *api.BlockAffinity) int { return strings.Compare(a.Spec.CIDR, b.Spec.CIDR) })
	owned := 0
	for _, a := range affs {
		cidr, err := api.ParseBlockCIDR(a.Spec.CIDR)
		if err != nil || cidr.Addr().BitLen() != bitLen {
			continue
		}
		owned++
		if len(got) == n || a.Spec.State == api.AffinityPendingDeletion {
			continue
		}
		if _, ok := poolOfBlock(pools, cidr); !ok || (cidr == hinted && a.Spec.State == api.AffinityConfirmed) {
			continue
		}
		if a.Spec.State == api.AffinityPending {
			// A claim that was interrupted (or is running right now in
			// another process of this host): finish it.
			if err := c.claim(ctx, args.Node, cidr, 0); err != nil {
				if errors.Is(err, errTaken) {
					continue
				}
				return got, err
			}
		}
		var p *prefetched
		if first && len(got) == 0 && a.Spec.State == api.AffinityConfirmed {
			// The first of the node's blocks is where the request will
			// most likely be served: read it and count the handle up
			// at once.
			p = &prefetched{cidr: cidr}
			c.readCounting(ctx, p, args.Handle, n)
		}
		first = false
		err = take(cidr, args.Node, p)
		c.uncount(ctx, args.Handle, p)
		if err != nil {
			return got, err
		}
	}

	// 2. New blocks.
	limitHit := false
	if autoAlloc := s.cfg.AutoAllocateBlocks; autoAlloc == nil || *autoAlloc {
		for len(got) < n {
			cidr, err := c.claimFreeBlock(ctx, s, args.Node, pools, bitLen)
			if errors.Is(err, ErrBlockLimit) {
				limitHit = true
				break
			}
			if err != nil {
				return got, err
			}
			if !cidr.IsValid() {
				break // no free block left
			}
			if err := take(cidr, args.Node, nil); err != nil {
				return got, err
			}
		}
	}

	// 3. Borrow from other hosts' blocks.
	if len(got) < n && !s.cfg.StrictAffinity {
		blocks, err := c.listBlocks(ctx)
		if err != nil {
			return got, err
		}
		for _, b := range blocks {
			if len(got) == n {
				break
			}
			if _, ok := poolOfBlock(pools, b.cidr); !ok || b.affineTo(args.Node) || b.freeFor(s.reserved) == 0 {
				continue
			}
			if err := take(b.cidr, "", nil); err != nil {
				return got, err
			}
		}
	}

	if len(got) < n {
		names := make([]string, len(pools))
		for i, p := range pools {
			names[i] = p.String()
		}
		why := "no free address in pool(s) " + strings.Join(names, ", ")
		if s.cfg.StrictAffinity {
			why += " that this node may use (strictAffinity forbids borrowing from other hosts' blocks)"
		}
		if limitHit {
			return got, fmt.Errorf("%w: node %q owns %d IPv%d blocks, the limit (IPAMConfiguration maxBlocksPerHost %d); %s",
				ErrBlockLimit, args.Node, max(owned, s.cfg.MaxBlocksPerHost), family(bitLen), s.cfg.MaxBlocksPerHost, why)
		}
		return got, fmt.Errorf("%w: got %d of %d: %s", ErrPoolsExhausted, len(got), n, why)
	}
	return got, nil
}

// allocFromBlock takes up to want free addresses of one block for the
// handle. With affineTo set it only uses the block while it still belongs
// to that node. The handle is counted up before the block is written, so
// that a crash in between leaves a handle that over-counts (harmless:
// release scans the block) rather than an address nobody can find. p, when
// not nil, is the block read ahead and what the handle counts already;
// allocFromBlock takes over p's count.
func (c *Client) allocFromBlock(ctx context.Context, cidr netip.Prefix, want int, args AutoAssignArgs, r reservations, affineTo string, p *prefetched) ([]netip.Addr, error) {
	counted := 0 // what the handle has been told about this block
	var ahead *block
	var aheadErr error
	if p != nil {
		counted, ahead, aheadErr = p.counted, p.b, p.err
		p.counted = 0
		if ahead == nil && aheadErr == nil {
			// It did not exist when read: read again in the loop.
			aheadErr = errRetry
		}
	}
	var got []netip.Addr
	err := c.retry(ctx, fmt.Sprintf("allocating from block %s", cidr), func() error {
		got = nil
		var b *block
		var err error
		if ahead != nil || aheadErr != nil {
			b, err = ahead, aheadErr
			ahead, aheadErr = nil, nil
			if errors.Is(err, errRetry) {
				b, err = c.getBlock(ctx, cidr)
			}
		} else {
			b, err = c.getBlock(ctx, cidr)
		}
		if err != nil || b == nil || (affineTo != "" && !b.affineTo(affineTo)) {
			return err
		}
		addrs := b.allocate(want, args.Handle, args.Attrs, r)
		if len(addrs) == 0 {
			return nil
		}
		if len(addrs) > counted {
			if err := c.changeHandle(ctx, args.Handle, map[string]int{cidr.String(): len(addrs) - counted}); err != nil {
				return err
			}
			counted = len(addrs)
		}
		if err := c.writeBlock(ctx, b); err != nil {
			return err
		}
		got = addrs
		return nil
	})
	if extra := counted - len(got); extra > 0 {
		if herr := c.changeHandle(ctx, args.Handle, map[string]int{cidr.String(): -extra}); herr != nil && err == nil {
			err = herr
		}
	}
	return got, err
}

// claimFreeBlock claims a block of one of the pools for node and returns
// its CIDR, an invalid prefix when every block is taken, or ErrBlockLimit.
func (c *Client) claimFreeBlock(ctx context.Context, s *snapshot, node string, pools []pool, bitLen int) (netip.Prefix, error) {
	limit := s.cfg.MaxBlocksPerHost
	if limit > 0 {
		n, err := c.countAffinities(ctx, node, bitLen)
		if err != nil {
			return netip.Prefix{}, err
		}
		if n >= limit {
			return netip.Prefix{}, ErrBlockLimit
		}
	}
	lost := 0
	for {
		blocks, err := c.listBlocks(ctx)
		if err != nil {
			return netip.Prefix{}, err
		}
		existing := make(map[netip.Prefix]*block, len(blocks))
		for _, b := range blocks {
			existing[b.cidr] = b
		}
		// Another process of this host may have claimed a block since
		// this request listed the host's affinities: use it rather than
		// claim one more.
		for _, b := range blocks {
			if _, ok := poolOfBlock(pools, b.cidr); ok && b.affineTo(node) && b.freeFor(s.reserved) > 0 {
				return b.cidr, nil
			}
		}
		cidr := s.findFreeBlock(node, pools, existing)
		if !cidr.IsValid() {
			return cidr, nil
		}
		err = c.claim(ctx, node, cidr, limit)
		switch {
		case err == nil:
			return cidr, nil
		case errors.Is(err, errTaken) && lost < c.maxAttempts:
			// Another host won this block: list again and pick another.
			lost++
			c.log.Debug("lost the race for a block", "node", node, "cidr", cidr)
			if err := c.backoff(ctx, min(lost, 4)); err != nil {
				return netip.Prefix{}, err
			}
		default:
			return netip.Prefix{}, err
		}
	}
}

// findFreeBlock picks the first block, from the node's start offset on,
// that does not exist and is not wholly reserved; failing that, an
// existing block that nobody owns and that has room.
func (s *snapshot) findFreeBlock(node string, pools []pool, existing map[netip.Prefix]*block) netip.Prefix {
	for _, p := range pools {
		hostBits := uint(p.blockBits - p.cidr.Bits())
		n := uint64(1) << min(hostBits, 62)
		start := startOffset(node, n)
		for i := uint64(0); i < min(n, maxScan); i++ {
			off := (start + i) % n
			cidr := netip.PrefixFrom(addOffset(p.cidr.Addr(), off, uint(p.cidr.Addr().BitLen()-p.blockBits)), p.blockBits)
			if _, taken := existing[cidr]; taken || s.reserved.covers(cidr) {
				continue
			}
			return cidr
		}
	}
	for _, p := range pools {
		for cidr, b := range existing {
			if b.Spec.Affinity == nil && p.blockBits == cidr.Bits() && p.cidr.Contains(cidr.Addr()) && b.freeFor(s.reserved) > 0 {
				return cidr
			}
		}
	}
	return netip.Prefix{}
}

func (c *Client) countAffinities(ctx context.Context, node string, bitLen int) (int, error) {
	affs, err := c.nodeAffinities(ctx, node)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range affs {
		if p, err := api.ParseBlockCIDR(a.Spec.CIDR); err == nil && p.Addr().BitLen() == bitLen {
			n++
		}
	}
	return n, nil
}

// claim makes the block at cidr node's: a pending affinity first, then the
// block (or, if it exists unowned, the block's affinity), then the
// affinity confirmed. Each step is one conditional write, so two hosts
// racing for the block collide on its creation and exactly one wins; the
// loser removes its pending affinity and gets errTaken. With limit > 0,
// the claim backs off with ErrBlockLimit if, once its pending affinity is
// visible, the node has more than limit: two claims racing past the limit
// both see each other and neither exceeds it.
func (c *Client) claim(ctx context.Context, node string, cidr netip.Prefix, limit int) error {
	what := fmt.Sprintf("claiming block %s for node %q", cidr, node)
	key := api.Key{Kind: "BlockAffinity", Name: api.BlockAffinityName(node, cidr)}
	aff := &api.BlockAffinity{TypeMeta: api.TypeMeta{Kind: "BlockAffinity", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: key.Name},
		Spec:       api.BlockAffinitySpec{State: api.AffinityPending, Node: node, CIDR: cidr.String()}}
	created := false
	r, err := c.ds.Create(ctx, aff)
	switch {
	case err == nil:
		created = true
		aff = r.(*api.BlockAffinity)
	case errors.Is(err, datastore.ErrAlreadyExists):
		// Another process of this host is claiming it, or a claim was
		// interrupted: carry on from where it is.
		r, err := c.ds.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		aff = r.(*api.BlockAffinity)
		if aff.Spec.State == api.AffinityPendingDeletion {
			return errTaken
		}
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	dropAffinity := func() {
		if !created {
			return
		}
		if _, err := c.ds.Delete(ctx, key, aff.ResourceVersion); err != nil && !errors.Is(err, datastore.ErrNotFound) {
			c.log.Warn("could not remove a pending block affinity", "node", node, "cidr", cidr, "err", err)
		}
	}

	if limit > 0 && created {
		n, err := c.countAffinities(ctx, node, cidr.Addr().BitLen())
		if err != nil {
			dropAffinity()
			return fmt.Errorf("%s: %w", what, err)
		}
		if n > limit {
			dropAffinity()
			return ErrBlockLimit
		}
	}

	// The block: create it, or adopt it if it exists and nobody owns it.
	err = c.retry(ctx, what, func() error {
		b, err := c.getBlock(ctx, cidr)
		switch {
		case err != nil:
			return err
		case b == nil:
			b = newBlock(cidr, node)
			if _, err := c.ds.Create(ctx, b.IPAMBlock); errors.Is(err, datastore.ErrAlreadyExists) {
				return errRetry
			} else if err != nil {
				return err
			}
			return nil
		case b.affineTo(node):
			return nil
		case b.Spec.Affinity != nil:
			return errTaken
		default:
			a := api.AffinityPrefix + node
			b.Spec.Affinity = &a
			return c.writeBlock(ctx, b)
		}
	})
	if errors.Is(err, errTaken) {
		dropAffinity()
		return errTaken
	}
	if err != nil {
		dropAffinity()
		return fmt.Errorf("%s: %w", what, err)
	}

	// Confirm.
	err = c.retry(ctx, what, func() error {
		r, err := c.ds.Get(ctx, key)
		if errors.Is(err, datastore.ErrNotFound) {
			// A racing process of this host gave up on it after we
			// created the block; the block is ours, so record that.
			aff.ResourceVersion = ""
			aff.Spec.State = api.AffinityConfirmed
			if _, err := c.ds.Create(ctx, aff); errors.Is(err, datastore.ErrAlreadyExists) {
				return errRetry
			} else {
				return err
			}
		}
		if err != nil {
			return err
		}
		cur := r.(*api.BlockAffinity)
		switch cur.Spec.State {
		case api.AffinityConfirmed:
			return nil
		case api.AffinityPendingDeletion:
			return errTaken
		}
		cur.Spec.State = api.AffinityConfirmed
		_, err = c.ds.Update(ctx, cur)
		return err
	})
	if err != nil {
		if errors.Is(err, errTaken) {
			return errTaken
		}
		return fmt.Errorf("%s: confirming the affinity: %w", what, err)
	}
	c.log.Debug("claimed block", "node", node, "cidr", cidr)
	return nil
}

// AssignIP implements Interface. The address must be in an enabled pool
// (reservations do not apply: asking for an address by name is what
// reserving keeps it for). If its block does not exist yet, the node
// claims it, within its block limit.
func (c *Client) AssignIP(ctx context.Context, args AssignIPArgs) error {
	what := fmt.Sprintf("assigning %s to handle %q on node %q", args.IP, args.Handle, args.Node)
	if err := checkIdentity(args.Handle, args.Node); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !args.IP.IsValid() || args.IP.Zone() != "" {
		return fmt.Errorf("%s: %w: not a valid address", what, ErrInvalidArgument)
	}
	ip := args.IP.Unmap()
	s, err := c.load(ctx, args.Node)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var p pool
	found := false
	for _, cand := range s.pools {
		if cand.cidr.Contains(ip) && !cand.spec.Disabled {
			p, found = cand, true
			break
		}
	}
	if !found {
		if dp, ok := poolOfAddr(s.pools, ip); ok {
			return fmt.Errorf("%s: %w (its pool %s is disabled)", what, ErrNotInPool, dp)
		}
		return fmt.Errorf("%s: %w", what, ErrNotInPool)
	}
	cidr := netip.PrefixFrom(ip, p.blockBits).Masked()
	counted := false
	var holder string
	err = c.retry(ctx, what, func() error {
		b, err := c.getBlock(ctx, cidr)
		if err != nil {
			return err
		}
		if b == nil {
			if lim := s.cfg.MaxBlocksPerHost; lim > 0 {
				if n, err := c.countAffinities(ctx, args.Node, ip.BitLen()); err != nil {
					return err
				} else if n >= lim {
					return fmt.Errorf("%w: its block %s does not exist and node %q already owns %d blocks (IPAMConfiguration maxBlocksPerHost %d)",
						ErrBlockLimit, cidr, args.Node, n, lim)
				}
			}
			if err := c.claim(ctx, args.Node, cidr, s.cfg.MaxBlocksPerHost); err != nil {
				if errors.Is(err, errTaken) {
					return errRetry // someone else created it: use theirs
				}
				if errors.Is(err, ErrBlockLimit) {
					return fmt.Errorf("%w: claiming its block %s would exceed IPAMConfiguration maxBlocksPerHost %d for node %q",
						ErrBlockLimit, cidr, s.cfg.MaxBlocksPerHost, args.Node)
				}
				return err
			}
			return errRetry
		}
		ord, _ := b.ordinal(ip)
		if h := b.holder(ord); h != nil {
			holder = handleOf(h)
			return nil
		}
		b.assign(ord, args.Handle, args.Attrs)
		if !counted {
			if err := c.changeHandle(ctx, args.Handle, map[string]int{cidr.String(): 1}); err != nil {
				return err
			}
			counted = true
		}
		return c.writeBlock(ctx, b)
	})
	if (err != nil || holder != "") && counted {
		if herr := c.changeHandle(ctx, args.Handle, map[string]int{cidr.String(): -1}); herr != nil {
			c.log.Warn("could not correct a handle's count", "handle", args.Handle, "err", herr)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if holder != "" {
		return fmt.Errorf("%s: %w: held by handle %q", what, ErrInUse, holder)
	}
	return nil
}
