package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// ReleaseIPs implements Interface.
func (c *Client) ReleaseIPs(ctx context.Context, ips ...netip.Addr) ([]netip.Addr, error) {
	return c.release(ctx, ips, "")
}

// release frees addresses; with handle set, only those that handle holds
// (the rest are reported as not allocated). Addresses are freed block by
// block, then the handles' counts are lowered.
func (c *Client) release(ctx context.Context, ips []netip.Addr, handle string) ([]netip.Addr, error) {
	byBlock, notAllocated, err := c.groupByBlock(ctx, ips)
	if err != nil {
		return nil, err
	}
	cidrs := make([]netip.Prefix, 0, len(byBlock))
	for cidr := range byBlock {
		cidrs = append(cidrs, cidr)
	}
	slices.SortFunc(cidrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	var errs []error
	for _, cidr := range cidrs {
		addrs := byBlock[cidr]
		var freed map[string]int // handle → count freed
		var missed []netip.Addr
		err := c.retry(ctx, fmt.Sprintf("releasing addresses in block %s", cidr), func() error {
			freed, missed = map[string]int{}, nil
			b, err := c.getBlock(ctx, cidr)
			if err != nil {
				return err
			}
			if b == nil {
				missed = addrs
				return nil
			}
			var ords []int
			for _, a := range addrs {
				ord, _ := b.ordinal(a)
				h := b.holder(ord)
				if h == nil || (handle != "" && handleOf(h) != handle) {
					missed = append(missed, a)
					continue
				}
				ords = append(ords, ord)
				freed[handleOf(h)]++
			}
			if len(ords) == 0 {
				return nil
			}
			b.release(ords)
			return c.writeBlock(ctx, b)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		notAllocated = append(notAllocated, missed...)
		for h, n := range freed {
			if h == "" {
				continue
			}
			if err := c.changeHandle(ctx, h, map[string]int{cidr.String(): -n}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	slices.SortFunc(notAllocated, netip.Addr.Compare)
	if err := errors.Join(errs...); err != nil {
		return notAllocated, fmt.Errorf("releasing %d address(es): %w", len(ips), err)
	}
	return notAllocated, nil
}

// groupByBlock maps each address to the block that would hold it: by the
// block size of the pool it is in, or, for an address whose pool has gone,
// by the existing block that contains it. Addresses in neither are not
// allocated.
func (c *Client) groupByBlock(ctx context.Context, ips []netip.Addr) (map[netip.Prefix][]netip.Addr, []netip.Addr, error) {
	s, err := c.load(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	out := map[netip.Prefix][]netip.Addr{}
	var none []netip.Addr
	var blocks []*block
	listed := false
	for _, ip := range ips {
		if !ip.IsValid() {
			continue
		}
		ip = ip.Unmap()
		if p, ok := poolOfAddr(s.pools, ip); ok {
			cidr := netip.PrefixFrom(ip, p.blockBits).Masked()
			out[cidr] = append(out[cidr], ip)
			continue
		}
		if !listed {
			if blocks, err = c.listBlocks(ctx); err != nil {
				return nil, nil, err
			}
			listed = true
		}
		i := slices.IndexFunc(blocks, func(b *block) bool { return b.cidr.Contains(ip) })
		if i < 0 {
			none = append(none, ip)
			continue
		}
		out[blocks[i].cidr] = append(out[blocks[i].cidr], ip)
	}
	return out, none, nil
}

// ReleaseByHandle implements Interface.
func (c *Client) ReleaseByHandle(ctx context.Context, handle string) error {
	what := fmt.Sprintf("releasing the addresses of handle %q", handle)
	if handle == "" {
		return fmt.Errorf("%s: %w: a handle is required", what, ErrInvalidArgument)
	}
	key := api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(handle)}
	// The handle names the blocks; free the handle's addresses in each,
	// then delete the handle if nothing was added meanwhile (a request
	// for the same handle racing the release): otherwise go round again.
	return c.retry(ctx, what, func() error {
		h, err := c.getHandle(ctx, key, handle)
		if err != nil || h == nil {
			return err
		}
		for _, k := range sortedKeys(h.Spec.Block) {
			cidr, err := api.ParseBlockCIDR(k)
			if err != nil {
				continue
			}
			if err := c.releaseHandleInBlock(ctx, cidr, handle); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		_, err = c.ds.Delete(ctx, key, h.ResourceVersion)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		return err
	})
}

func (c *Client) getHandle(ctx context.Context, key api.Key, handle string) (*api.IPAMHandle, error) {
	r, err := c.ds.Get(ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h, ok := r.(*api.IPAMHandle)
	if !ok {
		return nil, errUnexpectedKind(r)
	}
	if h.Spec.HandleID != handle {
		return nil, fmt.Errorf("handle %q and %q share the resource name %q", handle, h.Spec.HandleID, key.Name)
	}
	return h, nil
}

func (c *Client) releaseHandleInBlock(ctx context.Context, cidr netip.Prefix, handle string) error {
	return c.retry(ctx, fmt.Sprintf("releasing handle %q in block %s", handle, cidr), func() error {
		b, err := c.getBlock(ctx, cidr)
		if err != nil || b == nil {
			return err
		}
		ords := b.ordinalsOf(handle)
		if len(ords) == 0 {
			return nil
		}
		b.release(ords)
		return c.writeBlock(ctx, b)
	})
}

// IPsByHandle implements Interface.
func (c *Client) IPsByHandle(ctx context.Context, handle string) ([]netip.Addr, error) {
	what := fmt.Sprintf("listing the addresses of handle %q", handle)
	h, err := c.getHandle(ctx, api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(handle)}, handle)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if h == nil {
		return nil, nil
	}
	var out []netip.Addr
	for _, k := range sortedKeys(h.Spec.Block) {
		cidr, err := api.ParseBlockCIDR(k)
		if err != nil {
			continue
		}
		b, err := c.getBlock(ctx, cidr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if b == nil {
			continue
		}
		for _, o := range b.ordinalsOf(handle) {
			out = append(out, b.addr(o))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// ReleaseNode lets go of everything node owns, for when the node has been
// removed: each of its affinities is marked pendingDeletion (so that the
// node's own allocators stop using the block), the block loses its
// affinity (or is deleted if empty), and the affinity is deleted.
// Addresses still allocated stay allocated: their workloads may still be
// running; the block is deleted once the last is released. Safe to call
// again after a failure, and concurrently with allocation elsewhere.
func (c *Client) ReleaseNode(ctx context.Context, node string) error {
	affs, err := c.nodeAffinities(ctx, node)
	if err != nil {
		return fmt.Errorf("releasing node %q: %w", node, err)
	}
	var errs []error
	for _, a := range affs {
		if err := c.releaseAffinity(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("releasing node %q: %w", node, err)
	}
	return nil
}

func (c *Client) releaseAffinity(ctx context.Context, a *api.BlockAffinity) error {
	node := a.Spec.Node
	cidr, err := api.ParseBlockCIDR(a.Spec.CIDR)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("releasing block %s of node %q", cidr, node)
	key := api.KeyOf(a)
	err = c.retry(ctx, what, func() error {
		r, err := c.ds.Get(ctx, key)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		cur := r.(*api.BlockAffinity)
		if cur.Spec.State == api.AffinityPendingDeletion {
			return nil
		}
		cur.Spec.State = api.AffinityPendingDeletion
		_, err = c.ds.Update(ctx, cur)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = c.retry(ctx, what, func() error {
		b, err := c.getBlock(ctx, cidr)
		if err != nil || b == nil || !b.affineTo(node) {
			return err
		}
		b.Spec.Affinity = nil
		return c.writeBlock(ctx, b) // deletes it when empty
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := c.ds.Delete(ctx, key, ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("%s: %w", what, err)
	}
	c.log.Debug("released block of a removed node", "node", node, "cidr", cidr)
	return nil
}

// ReleaseMissingNodes runs ReleaseNode for every node that holds block
// affinities but has no Node resource, and returns those nodes. A
// controller calls it when it sees a Node deleted and now and then to
// catch what it missed; it is idempotent.
func (c *Client) ReleaseMissingNodes(ctx context.Context) ([]string, error) {
	res, err := c.ds.List(ctx, datastore.ListOptions{Kind: "BlockAffinity"})
	if err != nil {
		return nil, fmt.Errorf("listing block affinities: %w", err)
	}
	nodes, err := c.ds.List(ctx, datastore.ListOptions{Kind: "Node"})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	exists := map[string]bool{}
	for _, n := range nodes.Items {
		exists[n.GetObjectMeta().Name] = true
	}
	missing := map[string]bool{}
	for _, r := range res.Items {
		if a, ok := r.(*api.BlockAffinity); ok && !exists[a.Spec.Node] {
			missing[a.Spec.Node] = true
		}
	}
	out := sortedKeys(missing)
	var errs []error
	for _, n := range out {
		if err := c.ReleaseNode(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
