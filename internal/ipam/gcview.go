package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// This file serves a garbage collector (serval-controllers): one read of
// every allocation, and giving back an empty block without racing the
// node's allocators.

// AttrPodUID is the attribute a Kubernetes-mode CNI plugin may store with
// an allocation: the UID of the pod it was made for, so that a collector
// can tell a pod recreated under the same name from the one that held the
// address.
const AttrPodUID = "pod-uid"

// State is what IPAM holds at one moment, as a garbage collector reads it.
type State struct {
	// Allocations lists every allocated address (Allocated is true), in
	// address order.
	Allocations []Allocation
	// Blocks lists every block, in address order.
	Blocks []BlockUsage
	// AffinityNodes lists (sorted) the nodes that hold at least one block
	// affinity, whatever its state.
	AffinityNodes []string
}

// State reads every block and affinity. Each block is read in one piece,
// but blocks are read one after another: the view may mix moments, which
// a collector allows for by checking again before it changes anything.
func (c *Client) State(ctx context.Context) (*State, error) {
	s, err := c.load(ctx, "")
	if err != nil {
		return nil, err
	}
	blocks, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	affs, err := c.ds.List(ctx, datastore.ListOptions{Kind: "BlockAffinity"})
	if err != nil {
		return nil, fmt.Errorf("listing block affinities: %w", err)
	}
	st := &State{}
	nodes := map[string]bool{}
	for _, r := range affs.Items {
		if a, ok := r.(*api.BlockAffinity); ok && a.Spec.Node != "" {
			nodes[a.Spec.Node] = true
		}
	}
	st.AffinityNodes = sortedKeys(nodes)
	for _, b := range blocks {
		bu := BlockUsage{CIDR: b.cidr, Node: b.affinityNode(), InUse: b.inUse(), Free: len(b.Spec.Unallocated)}
		p, inPool := poolOfBlock(s.pools, b.cidr)
		if inPool {
			bu.Pool = p.name
		}
		st.Blocks = append(st.Blocks, bu)
		for o := range b.Spec.Allocations {
			h := b.holder(o)
			if h == nil {
				continue
			}
			ip := b.addr(o)
			st.Allocations = append(st.Allocations, Allocation{IP: ip, Pool: bu.Pool, Block: b.cidr, BlockNode: bu.Node,
				Allocated: true, Handle: handleOf(h), Attrs: h.Secondary, Reserved: s.reserved.contains(ip)})
		}
	}
	slices.SortFunc(st.Blocks, func(a, b BlockUsage) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
	slices.SortFunc(st.Allocations, func(a, b Allocation) int { return a.IP.Compare(b.IP) })
	return st, nil
}

// ReleaseEmptyBlock gives back node's block at cidr if it holds no
// address, and reports whether it did. The node's affinity is first
// marked pendingDeletion (only a confirmed one: a claim in progress is
// left alone), so that the node's allocators stop choosing the
// block; then the block is deleted conditionally on the version read
// empty, so that an allocation that lands in it meanwhile (an allocator
// that had already chosen it) makes the delete fail, the block is read
// again, found in use, and its affinity confirmed again. An address is
// never lost: the block is only deleted at a version that holds none.
func (c *Client) ReleaseEmptyBlock(ctx context.Context, cidr netip.Prefix, node string) (bool, error) {
	what := fmt.Sprintf("releasing empty block %s of node %q", cidr, node)
	if node == "" || !cidr.IsValid() || cidr.Masked() != cidr {
		return false, fmt.Errorf("%s: %w: a node and a block CIDR are required", what, ErrInvalidArgument)
	}
	b, err := c.getBlock(ctx, cidr)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if b == nil || !b.affineTo(node) || b.inUse() > 0 {
		return false, nil
	}
	key := api.Key{Kind: "BlockAffinity", Name: api.BlockAffinityName(node, cidr)}
	marked, err := c.markPendingDeletion(ctx, key)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if !marked {
		return false, nil // a claim in progress, or a release already
	}
	released := false
	err = c.retry(ctx, what, func() error {
		released = false
		b, err := c.getBlock(ctx, cidr)
		switch {
		case err != nil:
			return err
		case b == nil:
			released = true // deleted meanwhile (a ReleaseNode)
			return nil
		case !b.affineTo(node) || b.inUse() > 0:
			return nil
		}
		b.Spec.Affinity = nil
		if err := c.writeBlock(ctx, b); err != nil { // deletes it: empty, no affinity
			return err
		}
		released = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if !released {
		// An allocation got in first: the block stays the node's.
		if err := c.setAffinityState(ctx, key, api.AffinityConfirmed); err != nil {
			return false, fmt.Errorf("%s: the block is in use again, and confirming its affinity again: %w", what, err)
		}
		return false, nil
	}
	if _, err := c.ds.Delete(ctx, key, ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
		return true, fmt.Errorf("%s: deleting the affinity: %w", what, err)
	}
	c.log.Debug("released empty block", "node", node, "cidr", cidr)
	return true, nil
}

// markPendingDeletion moves a confirmed affinity to pendingDeletion and
// reports whether it did. An affinity still pending belongs to a claim in
// progress (its block is empty because the claimer has not allocated
// yet) and is left alone, as is a missing one.
func (c *Client) markPendingDeletion(ctx context.Context, key api.Key) (bool, error) {
	marked := false
	err := c.retry(ctx, "marking block affinity "+key.Name+" for deletion", func() error {
		r, err := c.ds.Get(ctx, key)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		a, ok := r.(*api.BlockAffinity)
		if !ok {
			return errUnexpectedKind(r)
		}
		if a.Spec.State != api.AffinityConfirmed {
			return nil
		}
		a.Spec.State = api.AffinityPendingDeletion
		if _, err = c.ds.Update(ctx, a); errors.Is(err, datastore.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		marked = true
		return nil
	})
	return marked, err
}

// setAffinityState moves an affinity to state; a missing affinity is left
// missing.
func (c *Client) setAffinityState(ctx context.Context, key api.Key, state api.AffinityState) error {
	return c.retry(ctx, "setting block affinity "+key.Name+" to "+string(state), func() error {
		r, err := c.ds.Get(ctx, key)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		a, ok := r.(*api.BlockAffinity)
		if !ok {
			return errUnexpectedKind(r)
		}
		if a.Spec.State == state {
			return nil
		}
		a.Spec.State = state
		_, err = c.ds.Update(ctx, a)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		return err
	})
}
