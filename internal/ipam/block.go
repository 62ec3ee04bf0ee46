package ipam

import (
	"encoding/binary"
	"maps"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/servalnet/serval/internal/api"
)

// block wraps a stored IPAMBlock with its parsed CIDR. Its methods only
// change the in-memory copy; the caller writes it back with the
// resourceVersion it was read at, so a concurrent change makes the write
// fail and the operation start again from a fresh read.
type block struct {
	*api.IPAMBlock
	cidr netip.Prefix
}

func wrapBlock(r api.Resource) (*block, error) {
	b, ok := r.(*api.IPAMBlock)
	if !ok {
		return nil, errUnexpectedKind(r)
	}
	cidr, err := api.ParseBlockCIDR(b.Spec.CIDR)
	if err != nil {
		return nil, err
	}
	return &block{IPAMBlock: b, cidr: cidr}, nil
}

// newBlock is an empty block affine to node ("" for none), with the
// ordinals free in ascending order.
func newBlock(cidr netip.Prefix, node string) *block {
	n := api.BlockSize(cidr)
	b := &api.IPAMBlock{
		TypeMeta:   api.TypeMeta{Kind: "IPAMBlock", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: api.IPAMBlockName(cidr)},
		Spec: api.IPAMBlockSpec{
			CIDR:        cidr.String(),
			Allocations: make([]*int, n),
			Unallocated: make([]int, n),
		},
	}
	for i := range n {
		b.Spec.Unallocated[i] = i
	}
	if node != "" {
		a := api.AffinityPrefix + node
		b.Spec.Affinity = &a
	}
	return &block{IPAMBlock: b, cidr: cidr}
}

// affineTo reports whether the block belongs to node.
func (b *block) affineTo(node string) bool {
	return b.Spec.Affinity != nil && *b.Spec.Affinity == api.AffinityPrefix+node
}

// affinityNode is the node the block belongs to, "" when none.
func (b *block) affinityNode() string {
	if b.Spec.Affinity == nil {
		return ""
	}
	n, _ := cutAffinity(*b.Spec.Affinity)
	return n
}

func cutAffinity(a string) (string, bool) {
	if len(a) > len(api.AffinityPrefix) && a[:len(api.AffinityPrefix)] == api.AffinityPrefix {
		return a[len(api.AffinityPrefix):], true
	}
	return "", false
}

// addr is the address at ordinal ord of the block.
func (b *block) addr(ord int) netip.Addr { return addOffset(b.cidr.Addr(), uint64(ord), 0) }

// ordinal is the offset of a in the block, false when a is outside it.
func (b *block) ordinal(a netip.Addr) (int, bool) {
	if !b.cidr.Contains(a) {
		return 0, false
	}
	base, x := b.cidr.Addr().As16(), a.As16()
	return int(binary.BigEndian.Uint64(x[8:]) - binary.BigEndian.Uint64(base[8:])), true
}

// inUse counts the allocated addresses.
func (b *block) inUse() int { return len(b.Spec.Allocations) - len(b.Spec.Unallocated) }

// freeFor counts the free addresses that automatic assignment may use.
func (b *block) freeFor(r reservations) int {
	if len(r) == 0 {
		return len(b.Spec.Unallocated)
	}
	n := 0
	for _, o := range b.Spec.Unallocated {
		if !r.contains(b.addr(o)) {
			n++
		}
	}
	return n
}

// holder returns the attribute of the address at ord, nil when it is free.
func (b *block) holder(ord int) *api.AllocationAttribute {
	if ord < 0 || ord >= len(b.Spec.Allocations) || b.Spec.Allocations[ord] == nil {
		return nil
	}
	i := *b.Spec.Allocations[ord]
	if i < 0 || i >= len(b.Spec.Attributes) {
		return nil
	}
	return &b.Spec.Attributes[i]
}

func handleOf(a *api.AllocationAttribute) string {
	if a == nil || a.HandleID == nil {
		return ""
	}
	return *a.HandleID
}

// attribute returns the index of the attribute (handle, attrs), adding it
// if no allocation uses an equal one yet: a workload's addresses share one.
func (b *block) attribute(handle string, attrs map[string]string) int {
	for i, a := range b.Spec.Attributes {
		if handleOf(&a) == handle && maps.Equal(a.Secondary, attrs) {
			return i
		}
	}
	h := handle
	b.Spec.Attributes = append(b.Spec.Attributes, api.AllocationAttribute{HandleID: &h, Secondary: maps.Clone(attrs)})
	return len(b.Spec.Attributes) - 1
}

// allocate takes up to n free addresses in Unallocated order, passing over
// reserved ones (which keep their place), and gives them to handle.
func (b *block) allocate(n int, handle string, attrs map[string]string, r reservations) []netip.Addr {
	var out []netip.Addr
	keep := b.Spec.Unallocated[:0:0]
	idx := -1
	for _, o := range b.Spec.Unallocated {
		a := b.addr(o)
		if len(out) == n || r.contains(a) {
			keep = append(keep, o)
			continue
		}
		if idx < 0 {
			idx = b.attribute(handle, attrs)
		}
		b.Spec.Allocations[o] = &idx
		out = append(out, a)
	}
	b.Spec.Unallocated = keep
	return out
}

// assign gives the address at ord to handle; false when it is taken.
func (b *block) assign(ord int, handle string, attrs map[string]string) bool {
	if b.Spec.Allocations[ord] != nil {
		return false
	}
	idx := b.attribute(handle, attrs)
	b.Spec.Allocations[ord] = &idx
	b.Spec.Unallocated = slices.DeleteFunc(b.Spec.Unallocated, func(o int) bool { return o == ord })
	return true
}

// release frees the given ordinals, appending them to the back of the free
// list so that they are reused last, and drops attributes nothing uses.
func (b *block) release(ords []int) {
	for _, o := range ords {
		if b.Spec.Allocations[o] != nil {
			b.Spec.Allocations[o] = nil
			b.Spec.Unallocated = append(b.Spec.Unallocated, o)
		}
	}
	b.compactAttributes()
}

// ordinalsOf lists the ordinals held by handle.
func (b *block) ordinalsOf(handle string) []int {
	var out []int
	for o := range b.Spec.Allocations {
		if handleOf(b.holder(o)) == handle {
			out = append(out, o)
		}
	}
	return out
}

func (b *block) compactAttributes() {
	used := make([]bool, len(b.Spec.Attributes))
	for _, a := range b.Spec.Allocations {
		if a != nil && *a >= 0 && *a < len(used) {
			used[*a] = true
		}
	}
	remap := make([]int, len(used))
	var kept []api.AllocationAttribute
	for i, u := range used {
		if u {
			remap[i] = len(kept)
			kept = append(kept, b.Spec.Attributes[i])
		}
	}
	if len(kept) == len(used) {
		return
	}
	// Fresh pointers: several allocations may share one *int.
	for o, a := range b.Spec.Allocations {
		if a != nil {
			v := remap[*a]
			b.Spec.Allocations[o] = &v
		}
	}
	b.Spec.Attributes = kept
}

// addOffset returns a + off<<shift (128-bit arithmetic; IPv4 addresses
// stay IPv4). The caller keeps the result inside a prefix that holds a.
func addOffset(a netip.Addr, off uint64, shift uint) netip.Addr {
	x := a.As16()
	hi, lo := binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(x[8:])
	addLo := off << shift
	addHi := uint64(0)
	if shift > 0 {
		addHi = off >> (64 - shift)
	}
	lo, carry := bits.Add64(lo, addLo, 0)
	hi, _ = bits.Add64(hi, addHi, carry)
	binary.BigEndian.PutUint64(x[:8], hi)
	binary.BigEndian.PutUint64(x[8:], lo)
	out := netip.AddrFrom16(x)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}

// reservations are the prefixes of every IPReservation, masked.
type reservations []netip.Prefix

func (r reservations) contains(a netip.Addr) bool {
	for _, p := range r {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// covers reports whether every address of the block is reserved.
func (r reservations) covers(cidr netip.Prefix) bool {
	for _, p := range r {
		if p.Bits() <= cidr.Bits() && p.Contains(cidr.Addr()) {
			return true
		}
	}
	return false
}
