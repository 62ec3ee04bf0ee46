package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds IPAM's own state, modelled on Calico's: blocks of a pool
// (IPAMBlock), the claim a host holds on a block (BlockAffinity) and the
// addresses each workload holds (IPAMHandle). They are stored like every
// other kind, so that allocations are plain compare-and-swap writes on one
// key each, but they are Internal: servalctl does not offer them to users.
//
// Names are derived from the content, so that two hosts racing to create
// the same block or affinity collide on the same key and exactly one wins.

// IPAMBlock is one block of an IP pool: 2^(32-prefix) (or 2^(128-prefix))
// addresses, usually affine to one host, which advertises the whole block
// as one route.
type IPAMBlock struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       IPAMBlockSpec `json:"spec,omitempty"`
}

// IPAMBlockSpec is the content of a block.
//
// Allocations has one entry per address of the block (by ordinal, the
// offset from the block's first address): nil when free, else an index
// into Attributes, which says who holds it. Unallocated lists the free
// ordinals in the order they are to be handed out; a released ordinal is
// appended at the end, so that the address freed longest ago is reused
// first and a just-freed address is not given to the next workload at once.
type IPAMBlockSpec struct {
	CIDR string `json:"cidr"`
	// Affinity is "host:<node>" while a host owns the block; nil when the
	// block's host has been removed (the block lives on until empty).
	Affinity    *string               `json:"affinity,omitempty"`
	Allocations []*int                `json:"allocations"`
	Unallocated []int                 `json:"unallocated"`
	Attributes  []AllocationAttribute `json:"attributes"`
}

// AllocationAttribute says who holds an address: its handle and free-form
// details (node, namespace, workload, endpoint).
type AllocationAttribute struct {
	HandleID  *string           `json:"handle_id,omitempty"`
	Secondary map[string]string `json:"secondary,omitempty"`
}

// BlockAffinity records that a host claims a block. It is created (pending)
// before the block, confirmed once the block exists with this host's
// affinity, and marked pendingDeletion while the host lets go of it, so
// that a claim interrupted at any point can be finished or undone.
type BlockAffinity struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       BlockAffinitySpec `json:"spec,omitempty"`
}

// BlockAffinitySpec is the content of a BlockAffinity.
type BlockAffinitySpec struct {
	State AffinityState `json:"state"`
	Node  string        `json:"node"`
	CIDR  string        `json:"cidr"`
}

// AffinityState is where a BlockAffinity is in its life.
type AffinityState string

// The affinity states.
const (
	AffinityPending         AffinityState = "pending"
	AffinityConfirmed       AffinityState = "confirmed"
	AffinityPendingDeletion AffinityState = "pendingDeletion"
)

// IPAMHandle groups the addresses of one workload: for each block that
// holds some of them, how many. Release by handle reads it to find the
// blocks without scanning every block.
type IPAMHandle struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       IPAMHandleSpec `json:"spec,omitempty"`
}

// IPAMHandleSpec is the content of an IPAMHandle.
type IPAMHandleSpec struct {
	// HandleID is the handle as the caller gave it; the resource name is
	// derived from it (IPAMHandleName).
	HandleID string `json:"handleID"`
	// Block maps a block CIDR to the number of addresses held in it.
	Block map[string]int `json:"block,omitempty"`
}

// AffinityPrefix starts a block's Affinity when a host owns it.
const AffinityPrefix = "host:"

// Block sizes are bounded so that a block's allocation array stays small
// (at most 4096 entries), as IPPool's blockSize rule already ensures.
const maxBlockHostBits = 12

func init() {
	Register(KindInfo{Kind: "IPAMBlock", Plural: "ipamblocks", Internal: true,
		New: func() Resource { return &IPAMBlock{} }})
	Register(KindInfo{Kind: "BlockAffinity", Plural: "blockaffinities", Internal: true,
		New: func() Resource { return &BlockAffinity{} }})
	Register(KindInfo{Kind: "IPAMHandle", Plural: "ipamhandles", Internal: true,
		New: func() Resource { return &IPAMHandle{} }})
}

// IPAMBlockName is the resource name of the block with this CIDR: the
// address with its separators turned into dashes, then the prefix length
// ("10-65-0-0-26"; IPv6 is written in full so that the name never starts
// or ends with a dash: "fd00-0000-...-0040-122").
func IPAMBlockName(cidr netip.Prefix) string {
	a := cidr.Addr()
	var s string
	if a.Is4() {
		s = strings.ReplaceAll(a.String(), ".", "-")
	} else {
		s = strings.ReplaceAll(a.StringExpanded(), ":", "-")
	}
	return s + "-" + strconv.Itoa(cidr.Bits())
}

// BlockAffinityName is the resource name of node's affinity to the block
// ("host1-10-65-0-0-26"). A node name so long that the result would not be
// a valid name is replaced by a hash of it.
func BlockAffinityName(node string, cidr netip.Prefix) string {
	name := node + "-" + IPAMBlockName(cidr)
	if CheckDNS1123Subdomain(name) == "" {
		return name
	}
	return "a-" + shortHash(node) + "-" + IPAMBlockName(cidr)
}

// IPAMHandleName is the resource name of a handle: the handle itself when
// it is a valid name (as "serval-net.<containerID>" is), else "h-" and a
// hash of it.
func IPAMHandleName(handleID string) string {
	if CheckDNS1123Subdomain(handleID) == "" {
		return handleID
	}
	return "h-" + shortHash(handleID)
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:20])
}

// ParseBlockCIDR reads a block's CIDR, which must be strictly masked and
// hold at most 4096 addresses.
func ParseBlockCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is not a strictly masked network", s)
	}
	if p.Addr().BitLen()-p.Bits() > maxBlockHostBits {
		return netip.Prefix{}, fmt.Errorf("%q is too large for a block (at most %d addresses)", s, 1<<maxBlockHostBits)
	}
	return p, nil
}

// BlockSize is the number of addresses in a block.
func BlockSize(cidr netip.Prefix) int { return 1 << (cidr.Addr().BitLen() - cidr.Bits()) }

// SetDefaults sets nothing: blocks are written only by IPAM.
func (b *IPAMBlock) SetDefaults() {}

// Validate checks that the name matches the CIDR, the affinity, and that
// the allocation arrays are consistent: one entry per address, every
// attribute index in range, every free ordinal listed exactly once in
// Unallocated and no allocated one there. A block that fails this would
// make IPAM hand out an address twice, so it is never stored.
func (b *IPAMBlock) Validate() ErrorList {
	var errs ErrorList
	s := &b.Spec
	sp := Path("spec")
	cidr, err := ParseBlockCIDR(s.CIDR)
	switch {
	case s.CIDR == "":
		errs.Required(sp.Child("cidr"))
	case err != nil:
		errs.Add(sp.Child("cidr"), "%s", err.Error())
	case b.Name != "" && b.Name != IPAMBlockName(cidr):
		errs.Invalid("metadata.name", b.Name, fmt.Sprintf("does not match spec.cidr (want %q)", IPAMBlockName(cidr)))
	}
	if s.Affinity != nil {
		node, ok := strings.CutPrefix(*s.Affinity, AffinityPrefix)
		if !ok || CheckDNS1123Subdomain(node) != "" {
			errs.Invalid(sp.Child("affinity"), *s.Affinity, `is not a valid affinity ("host:" and a node name)`)
		}
	}
	for i, a := range s.Attributes {
		if a.HandleID != nil && *a.HandleID == "" {
			errs.Invalid(sp.Child("attributes").Index(i).Child("handle_id"), "", "must not be empty when set")
		}
	}
	if err != nil {
		return errs
	}
	size := BlockSize(cidr)
	if len(s.Allocations) != size {
		errs.Add(sp.Child("allocations"), "has %d entries, want %d (one per address of %s)", len(s.Allocations), size, s.CIDR)
		return errs
	}
	free := 0
	for i, a := range s.Allocations {
		switch {
		case a == nil:
			free++
		case *a < 0 || *a >= len(s.Attributes):
			errs.Invalid(sp.Child("allocations").Index(i), *a, fmt.Sprintf("is not an index into attributes (0-%d)", len(s.Attributes)-1))
		}
	}
	seen := make([]bool, size)
	for i, o := range s.Unallocated {
		p := sp.Child("unallocated").Index(i)
		switch {
		case o < 0 || o >= size:
			errs.Invalid(p, o, fmt.Sprintf("is not an ordinal of the block (0-%d)", size-1))
		case seen[o]:
			errs.Invalid(p, o, "is listed twice")
		case s.Allocations[o] != nil:
			errs.Invalid(p, o, "is allocated, so it cannot be free")
		default:
			seen[o] = true
		}
	}
	if len(errs) == 0 && len(s.Unallocated) != free {
		errs.Add(sp.Child("unallocated"), "lists %d free ordinals, but %d addresses are free", len(s.Unallocated), free)
	}
	return errs
}

// SetDefaults sets nothing.
func (a *BlockAffinity) SetDefaults() {}

// Validate checks the node, the CIDR, the state, and that the name is the
// one derived from node and CIDR.
func (a *BlockAffinity) Validate() ErrorList {
	var errs ErrorList
	s := &a.Spec
	sp := Path("spec")
	if s.Node == "" {
		errs.Required(sp.Child("node"))
	} else {
		checkName(&errs, sp.Child("node"), s.Node)
	}
	cidr, err := ParseBlockCIDR(s.CIDR)
	switch {
	case s.CIDR == "":
		errs.Required(sp.Child("cidr"))
	case err != nil:
		errs.Add(sp.Child("cidr"), "%s", err.Error())
	case s.Node != "" && a.Name != "" && a.Name != BlockAffinityName(s.Node, cidr):
		errs.Invalid("metadata.name", a.Name, fmt.Sprintf("does not match spec.node and spec.cidr (want %q)", BlockAffinityName(s.Node, cidr)))
	}
	checkEnum(&errs, sp.Child("state"), string(s.State), string(AffinityPending), string(AffinityConfirmed), string(AffinityPendingDeletion))
	return errs
}

// SetDefaults sets nothing.
func (h *IPAMHandle) SetDefaults() {}

// Validate checks the handle, that the name is derived from it, and the
// per-block counts.
func (h *IPAMHandle) Validate() ErrorList {
	var errs ErrorList
	sp := Path("spec")
	switch {
	case h.Spec.HandleID == "":
		errs.Required(sp.Child("handleID"))
	case len(h.Spec.HandleID) > 1024:
		errs.Add(sp.Child("handleID"), "is %d bytes long, at most 1024", len(h.Spec.HandleID))
	case h.Name != "" && h.Name != IPAMHandleName(h.Spec.HandleID):
		errs.Invalid("metadata.name", h.Name, fmt.Sprintf("does not match spec.handleID (want %q)", IPAMHandleName(h.Spec.HandleID)))
	}
	for _, k := range sortedKeys(h.Spec.Block) {
		p := sp.Child("block").Key(k)
		if _, err := ParseBlockCIDR(k); err != nil {
			errs.Add(p, "%s", err.Error())
		}
		if n := h.Spec.Block[k]; n <= 0 {
			errs.Invalid(p, n, "is not a positive count")
		}
	}
	return errs
}
