package ipam

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// This file answers the operator's questions (servalctl ipam show, check,
// release): read-only views over blocks, handles and endpoints.

// PoolUsage is how much of one pool is allocated.
type PoolUsage struct {
	Name     string
	CIDR     netip.Prefix
	Disabled bool
	Size     *big.Int // addresses in the pool (an IPv6 pool can hold more than 2^64)
	InUse    int
	Blocks   int
}

// Free is Size minus InUse.
func (p PoolUsage) Free() *big.Int { return new(big.Int).Sub(p.Size, big.NewInt(int64(p.InUse))) }

// BlockUsage is how much of one block is allocated and who owns it.
type BlockUsage struct {
	CIDR  netip.Prefix
	Pool  string // "" when no pool holds the block any more
	Node  string // the affine host, "" when none
	InUse int
	Free  int
}

// Usage is the state of every pool and block.
type Usage struct {
	Pools  []PoolUsage
	Blocks []BlockUsage
	// Orphans counts addresses allocated in blocks outside every pool.
	Orphans int
}

// Usage reads every pool and block.
func (c *Client) Usage(ctx context.Context) (*Usage, error) {
	s, err := c.load(ctx, "")
	if err != nil {
		return nil, err
	}
	blocks, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	u := &Usage{}
	for _, p := range s.pools {
		size := new(big.Int).Lsh(big.NewInt(1), uint(p.cidr.Addr().BitLen()-p.cidr.Bits()))
		u.Pools = append(u.Pools, PoolUsage{Name: p.name, CIDR: p.cidr, Disabled: p.spec.Disabled, Size: size})
	}
	for _, b := range blocks {
		bu := BlockUsage{CIDR: b.cidr, Node: b.affinityNode(), InUse: b.inUse(), Free: len(b.Spec.Unallocated)}
		if p, ok := poolOfBlock(s.pools, b.cidr); ok {
			bu.Pool = p.name
			i := slices.IndexFunc(u.Pools, func(pu PoolUsage) bool { return pu.Name == p.name })
			u.Pools[i].InUse += bu.InUse
			u.Pools[i].Blocks++
		} else {
			u.Orphans += bu.InUse
		}
		u.Blocks = append(u.Blocks, bu)
	}
	slices.SortFunc(u.Blocks, func(a, b BlockUsage) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
	return u, nil
}

// Allocation says what IPAM knows about one address.
type Allocation struct {
	IP        netip.Addr
	Pool      string       // "" when in no pool
	Block     netip.Prefix // invalid when no block holds it
	BlockNode string       // the block's host, "" when none
	Allocated bool
	Handle    string
	Attrs     map[string]string
	Reserved  bool // an IPReservation covers it
}

// Lookup tells who holds ip.
func (c *Client) Lookup(ctx context.Context, ip netip.Addr) (*Allocation, error) {
	ip = ip.Unmap()
	s, err := c.load(ctx, "")
	if err != nil {
		return nil, err
	}
	a := &Allocation{IP: ip, Reserved: s.reserved.contains(ip)}
	byBlock, _, err := c.groupByBlock(ctx, []netip.Addr{ip})
	if err != nil {
		return nil, err
	}
	if p, ok := poolOfAddr(s.pools, ip); ok {
		a.Pool = p.name
	}
	for cidr := range byBlock {
		b, err := c.getBlock(ctx, cidr)
		if err != nil {
			return nil, fmt.Errorf("looking up %s: %w", ip, err)
		}
		if b == nil {
			continue
		}
		a.Block, a.BlockNode = cidr, b.affinityNode()
		ord, _ := b.ordinal(ip)
		if h := b.holder(ord); h != nil {
			a.Allocated, a.Handle, a.Attrs = true, handleOf(h), h.Secondary
		}
	}
	return a, nil
}

// EndpointsUsing lists the WorkloadEndpoints ("namespace/name") whose
// ipNetworks hold ip.
func (c *Client) EndpointsUsing(ctx context.Context, ip netip.Addr) ([]string, error) {
	weps, err := c.endpointAddrs(ctx)
	if err != nil {
		return nil, err
	}
	return weps[ip.Unmap()], nil
}

// endpointAddrs maps every address of every WorkloadEndpoint to the
// endpoints ("namespace/name") that have it.
func (c *Client) endpointAddrs(ctx context.Context) (map[netip.Addr][]string, error) {
	res, err := c.ds.List(ctx, datastore.ListOptions{Kind: "WorkloadEndpoint"})
	if err != nil {
		return nil, fmt.Errorf("listing workload endpoints: %w", err)
	}
	out := map[netip.Addr][]string{}
	for _, r := range res.Items {
		w, ok := r.(*api.WorkloadEndpoint)
		if !ok {
			continue
		}
		for _, n := range w.Spec.IPNetworks {
			if p, err := parseCIDROrAddr(n); err == nil {
				a := p.Addr().Unmap()
				out[a] = append(out[a], w.Namespace+"/"+w.Name)
			}
		}
	}
	return out, nil
}

// ReleaseIPHeldBy frees ip only if handle still holds it: a caller that
// checked who holds an address (and that no endpoint uses it) frees
// exactly that allocation, never one made since by someone else. It
// reports whether the address was freed.
func (c *Client) ReleaseIPHeldBy(ctx context.Context, ip netip.Addr, handle string) (bool, error) {
	if handle == "" {
		return false, fmt.Errorf("releasing %s: %w: a handle is required", ip, ErrInvalidArgument)
	}
	missed, err := c.release(ctx, []netip.Addr{ip}, handle)
	return err == nil && len(missed) == 0, err
}

// Problem is one inconsistency found by Check.
type Problem struct {
	Kind    ProblemKind
	Message string
}

// ProblemKind classifies a Problem.
type ProblemKind string

// The kinds of problems Check finds.
const (
	// An address is allocated but no WorkloadEndpoint (or Node tunnel
	// address) uses it: leaked.
	ProblemLeaked ProblemKind = "leaked"
	// A WorkloadEndpoint's address, inside a pool, is not allocated:
	// IPAM may hand it out again.
	ProblemNotAllocated ProblemKind = "not-allocated"
	// A block or affinity belongs to a node that has no Node resource.
	ProblemMissingNode ProblemKind = "missing-node"
	// An allocation names a handle that does not exist.
	ProblemMissingHandle ProblemKind = "missing-handle"
	// A handle counts more (or fewer) addresses in a block than the block
	// holds for it: an allocation or release was interrupted between its
	// handle write and its block write (the process was killed). Nothing
	// is handed out twice, but the handle must be released by its owner
	// (CNI DEL) or by hand.
	ProblemHandleCount ProblemKind = "handle-count"
)

func (p Problem) String() string { return string(p.Kind) + ": " + p.Message }

// Check compares IPAM's records with the endpoints and nodes that exist.
// It only reads.
func (c *Client) Check(ctx context.Context) ([]Problem, error) {
	s, err := c.load(ctx, "")
	if err != nil {
		return nil, err
	}
	blocks, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	weps, err := c.endpointAddrs(ctx)
	if err != nil {
		return nil, err
	}
	nodeRes, err := c.ds.List(ctx, datastore.ListOptions{Kind: "Node"})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	handleRes, err := c.ds.List(ctx, datastore.ListOptions{Kind: "IPAMHandle"})
	if err != nil {
		return nil, fmt.Errorf("listing IPAM handles: %w", err)
	}
	affRes, err := c.ds.List(ctx, datastore.ListOptions{Kind: "BlockAffinity"})
	if err != nil {
		return nil, fmt.Errorf("listing block affinities: %w", err)
	}
	nodes := map[string]bool{}
	tunnel := map[netip.Addr]string{} // node tunnel addresses IPAM may have given
	for _, r := range nodeRes.Items {
		n, ok := r.(*api.Node)
		if !ok {
			continue
		}
		nodes[n.Name] = true
		addrs := []string{n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr}
		if n.Spec.BGP != nil {
			addrs = append(addrs, n.Spec.BGP.IPv4IPIPTunnelAddr)
		}
		if w := n.Spec.Wireguard; w != nil {
			addrs = append(addrs, w.InterfaceIPv4Address, w.InterfaceIPv6Address)
		}
		for _, a := range addrs {
			if ip, err := netip.ParseAddr(a); err == nil {
				tunnel[ip.Unmap()] = n.Name
			}
		}
	}
	handles := map[string]bool{}
	for _, r := range handleRes.Items {
		if h, ok := r.(*api.IPAMHandle); ok {
			handles[h.Spec.HandleID] = true
		}
	}
	held := map[string]map[string]int{} // handle → block → addresses the block holds for it

	var probs []Problem
	add := func(k ProblemKind, format string, args ...any) {
		probs = append(probs, Problem{Kind: k, Message: fmt.Sprintf(format, args...)})
	}
	allocated := map[netip.Addr]bool{}
	for _, b := range blocks {
		if n := b.affinityNode(); n != "" && !nodes[n] {
			add(ProblemMissingNode, "block %s is affine to node %q, which does not exist (%d addresses in use)", b.cidr, n, b.inUse())
		}
		for o := range b.Spec.Allocations {
			h := b.holder(o)
			if h == nil {
				continue
			}
			ip := b.addr(o)
			allocated[ip] = true
			handle := handleOf(h)
			if handle != "" {
				if held[handle] == nil {
					held[handle] = map[string]int{}
				}
				held[handle][b.cidr.String()]++
			}
			if handle != "" && !handles[handle] {
				add(ProblemMissingHandle, "%s is allocated to handle %q, which has no IPAMHandle", ip, handle)
			}
			if len(weps[ip]) == 0 && tunnel[ip] == "" {
				add(ProblemLeaked, "%s is allocated to handle %q%s but no WorkloadEndpoint has it", ip, handle, describeAttrs(h.Secondary))
			}
		}
	}
	for _, r := range handleRes.Items {
		h, ok := r.(*api.IPAMHandle)
		if !ok {
			continue
		}
		for _, cidr := range sortedKeys(h.Spec.Block) {
			if n, got := h.Spec.Block[cidr], held[h.Spec.HandleID][cidr]; n != got {
				add(ProblemHandleCount, "handle %q counts %d address(es) in block %s, which holds %d for it (an allocation or release was interrupted; release the handle)", h.Spec.HandleID, n, cidr, got)
			}
		}
	}
	for _, r := range affRes.Items {
		if a, ok := r.(*api.BlockAffinity); ok && !nodes[a.Spec.Node] {
			add(ProblemMissingNode, "node %q, which does not exist, holds an affinity for block %s (%s)", a.Spec.Node, a.Spec.CIDR, a.Spec.State)
		}
	}
	wepIPs := make([]netip.Addr, 0, len(weps))
	for ip := range weps {
		wepIPs = append(wepIPs, ip)
	}
	slices.SortFunc(wepIPs, netip.Addr.Compare)
	for _, ip := range wepIPs {
		if _, inPool := poolOfAddr(s.pools, ip); inPool && !allocated[ip] {
			add(ProblemNotAllocated, "WorkloadEndpoint %s has %s, which is not allocated", strings.Join(weps[ip], ", "), ip)
		}
	}
	return probs, nil
}

// describeAttrs renders attributes as " (node=n1, workload=w)".
func describeAttrs(attrs map[string]string) string {
	if len(attrs) == 0 {
		return ""
	}
	parts := make([]string, 0, len(attrs))
	for _, k := range sortedKeys(attrs) {
		parts = append(parts, k+"="+attrs[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
