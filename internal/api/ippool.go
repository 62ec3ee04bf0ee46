package api

import (
	"fmt"
	"net"
)

// IPPool is a range of addresses that workloads (and tunnel devices) get
// their addresses from. IPAM hands it out in blocks of 2^(32-blockSize)
// (or 2^(128-blockSize)) addresses, each block affine to one host, so that
// one route per block suffices.
type IPPool struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       IPPoolSpec `json:"spec,omitempty"`
}

// IPPoolSpec is the content of an IPPool.
type IPPoolSpec struct {
	// CIDR is the pool's range, strictly masked.
	CIDR string `json:"cidr"`
	// VXLANMode and IPIPMode say when traffic to the pool is encapsulated:
	// Never (the default), Always or CrossSubnet. At most one may be on.
	VXLANMode EncapMode `json:"vxlanMode,omitempty"`
	IPIPMode  EncapMode `json:"ipipMode,omitempty"`
	// NATOutgoing masquerades traffic from the pool to outside all pools.
	NATOutgoing bool `json:"natOutgoing,omitempty"`
	// Disabled pools hand out no new addresses.
	Disabled bool `json:"disabled,omitempty"`
	// DisableBGPExport keeps the pool's routes out of BGP.
	DisableBGPExport bool `json:"disableBGPExport,omitempty"`
	// BlockSize is the prefix length of the blocks: 20-32 for IPv4
	// (default 26), 116-128 for IPv6 (default 122). It cannot change later.
	BlockSize int `json:"blockSize,omitempty"`
	// NodeSelector picks the hosts that may take blocks from the pool
	// (default all()); NamespaceSelector restricts it to namespaces.
	NodeSelector      string `json:"nodeSelector,omitempty"`
	NamespaceSelector string `json:"namespaceSelector,omitempty"`
	// AllowedUses: Workload, Tunnel (both by default) or LoadBalancer alone.
	AllowedUses []IPPoolAllowedUse `json:"allowedUses,omitempty"`
	// AssignmentMode: Automatic (the default) lets IPAM pick from the pool
	// on its own; Manual only when the pool is asked for by name.
	AssignmentMode *AssignmentMode `json:"assignmentMode,omitempty"`
}

// EncapMode says when traffic to a pool is encapsulated.
type EncapMode string

// The encapsulation modes.
const (
	EncapNever       EncapMode = "Never"
	EncapAlways      EncapMode = "Always"
	EncapCrossSubnet EncapMode = "CrossSubnet"
)

func (m EncapMode) enabled() bool { return m == EncapAlways || m == EncapCrossSubnet }

// IPPoolAllowedUse is what addresses of a pool may be used for.
type IPPoolAllowedUse string

// The allowed uses.
const (
	AllowedUseWorkload     IPPoolAllowedUse = "Workload"
	AllowedUseTunnel       IPPoolAllowedUse = "Tunnel"
	AllowedUseLoadBalancer IPPoolAllowedUse = "LoadBalancer"
)

// AssignmentMode says whether IPAM may use a pool on its own.
type AssignmentMode string

// The assignment modes.
const (
	AssignmentAutomatic AssignmentMode = "Automatic"
	AssignmentManual    AssignmentMode = "Manual"
)

// Default block sizes.
const (
	DefaultBlockSizeV4 = 26
	DefaultBlockSizeV6 = 122
)

func init() {
	Register(KindInfo{
		Kind:       "IPPool",
		Plural:     "ippools",
		ShortNames: []string{"ippool", "ipp", "ipps", "pool", "pools"},
		New:        func() Resource { return &IPPool{} },
	})
}

// SetDefaults normalises the CIDR ("fd00:0::/48" becomes "fd00::/48", a
// bare address becomes a /32 or /128) and fills in the block size, the
// encapsulation modes (Never), the node selector (all()), the allowed uses
// (Workload, Tunnel) and the assignment mode (Automatic).
func (p *IPPool) SetDefaults() {
	s := &p.Spec
	version := 0
	if ip, n, err := parseCIDROrIP(s.CIDR); err == nil {
		version = ipVersion(ip)
		if n.IP.Equal(ip) {
			s.CIDR = n.String()
		}
	}
	if s.BlockSize == 0 {
		switch version {
		case 4:
			s.BlockSize = DefaultBlockSizeV4
		case 6:
			s.BlockSize = DefaultBlockSizeV6
		}
	}
	if s.IPIPMode == "" {
		s.IPIPMode = EncapNever
	}
	if s.VXLANMode == "" {
		s.VXLANMode = EncapNever
	}
	if s.NodeSelector == "" {
		s.NodeSelector = "all()"
	}
	if len(s.AllowedUses) == 0 {
		s.AllowedUses = []IPPoolAllowedUse{AllowedUseWorkload, AllowedUseTunnel}
	}
	if s.AssignmentMode == nil {
		s.AssignmentMode = ptr(AssignmentAutomatic)
	}
}

var (
	linkLocalV4 = &net.IPNet{IP: net.IPv4(169, 254, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}
	linkLocalV6 = &net.IPNet{IP: net.ParseIP("fe80::"), Mask: net.CIDRMask(10, 128)}
)

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// Validate checks the CIDR (valid, strictly masked, not link-local, large
// enough for one block), the block size, the modes, the selectors and the
// allowed uses.
func (p *IPPool) Validate() ErrorList {
	var errs ErrorList
	s := &p.Spec
	sp := Path("spec")
	version := 0
	var cidr *net.IPNet
	switch ip, n, err := parseCIDROrIP(s.CIDR); {
	case s.CIDR == "":
		errs.Required(sp.Child("cidr"))
	case err != nil:
		errs.Invalid(sp.Child("cidr"), s.CIDR, "is not a valid CIDR")
	case !n.IP.Equal(ip):
		ones, _ := n.Mask.Size()
		errs.Invalid(sp.Child("cidr"), s.CIDR, fmt.Sprintf("is not strictly masked: host bits are set (did you mean %s/%d?)", n.IP, ones))
		version = ipVersion(ip)
	default:
		version, cidr = ipVersion(ip), n
		if version == 4 && overlaps(n, linkLocalV4) {
			errs.Invalid(sp.Child("cidr"), s.CIDR, "overlaps the IPv4 link-local range 169.254.0.0/16")
		}
		if version == 6 && overlaps(n, linkLocalV6) {
			errs.Invalid(sp.Child("cidr"), s.CIDR, "overlaps the IPv6 link-local range fe80::/10")
		}
	}

	bs := s.BlockSize
	if bs == 0 { // not defaulted yet: judge the size it would get
		bs = map[int]int{4: DefaultBlockSizeV4, 6: DefaultBlockSizeV6}[version]
	}
	switch {
	case version == 4 && (bs < 20 || bs > 32):
		errs.Invalid(sp.Child("blockSize"), bs, "is not a valid IPv4 block size (20-32)")
	case version == 6 && (bs < 116 || bs > 128):
		errs.Invalid(sp.Child("blockSize"), bs, "is not a valid IPv6 block size (116-128)")
	case cidr != nil && !s.Disabled:
		if ones, _ := cidr.Mask.Size(); ones > bs {
			errs.Invalid(sp.Child("cidr"), s.CIDR, fmt.Sprintf("is smaller than one block (/%d): the pool's prefix must be at most the block size", bs))
		}
	}

	for _, m := range []struct {
		field string
		mode  EncapMode
	}{{"ipipMode", s.IPIPMode}, {"vxlanMode", s.VXLANMode}} {
		if m.mode != "" {
			checkEnum(&errs, sp.Child(m.field), string(m.mode), "Never", "Always", "CrossSubnet")
		}
	}
	if version == 6 && s.IPIPMode.enabled() {
		errs.Invalid(sp.Child("ipipMode"), string(s.IPIPMode), "is not supported on an IPv6 pool (only Never)")
	}
	if s.IPIPMode.enabled() && s.VXLANMode.enabled() {
		errs.Add(sp.Child("vxlanMode"), "must be Never when ipipMode is enabled: a pool uses at most one encapsulation")
	}

	checkSelector(&errs, sp.Child("nodeSelector"), s.NodeSelector)
	checkSelector(&errs, sp.Child("namespaceSelector"), s.NamespaceSelector)

	lb := false
	for _, u := range s.AllowedUses {
		if u == AllowedUseLoadBalancer {
			lb = true
		}
	}
	seen := map[IPPoolAllowedUse]bool{}
	for i, u := range s.AllowedUses {
		up := sp.Child("allowedUses").Index(i)
		switch u {
		case AllowedUseWorkload, AllowedUseTunnel:
			if lb {
				errs.Invalid(up, string(u), "cannot be combined with LoadBalancer")
			}
		case AllowedUseLoadBalancer:
		default:
			errs.Invalid(up, string(u), "is not a valid use (Workload, Tunnel, LoadBalancer)")
		}
		if seen[u] {
			errs.Invalid(up, string(u), "is listed twice")
		}
		seen[u] = true
	}
	if lb {
		if s.IPIPMode.enabled() || s.VXLANMode.enabled() {
			errs.Add(sp.Child("allowedUses"), "a LoadBalancer pool must not enable ipipMode or vxlanMode")
		}
		if s.DisableBGPExport {
			errs.Add(sp.Child("disableBGPExport"), "must not be true for a LoadBalancer pool (its addresses are reached through BGP)")
		}
		if s.NodeSelector != "" && s.NodeSelector != "all()" {
			errs.Invalid(sp.Child("nodeSelector"), s.NodeSelector, "is not allowed: a LoadBalancer pool's nodeSelector must be all()")
		}
	}
	if s.AssignmentMode != nil {
		checkEnum(&errs, sp.Child("assignmentMode"), string(*s.AssignmentMode), "Automatic", "Manual")
	}
	return errs
}
