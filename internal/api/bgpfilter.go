package api

import (
	"fmt"
	"net/netip"
)

// BGPFilter holds import and export rules for the BGP sessions of the
// BGPPeers that name it in spec.filters. As in Calico, the rules of one
// list are tried in order and the first that matches decides (Accept or
// Reject); a route no rule matches is accepted. A BGPPeer's filters are
// tried in the order it lists them, as one long list.
type BGPFilter struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       BGPFilterSpec `json:"spec,omitempty"`
}

// BGPFilterSpec is the content of a BGPFilter: one rule list per
// direction and IP version.
type BGPFilterSpec struct {
	ExportV4 []BGPFilterRule `json:"exportV4,omitempty"`
	ImportV4 []BGPFilterRule `json:"importV4,omitempty"`
	ExportV6 []BGPFilterRule `json:"exportV6,omitempty"`
	ImportV6 []BGPFilterRule `json:"importV6,omitempty"`
}

// BGPFilterRule is one rule (Calico's BGPFilterRuleV4 and V6 have the same
// fields). A rule with no match field matches every route of its family.
type BGPFilterRule struct {
	// CIDR and MatchOperator go together: Equal and NotEqual compare a
	// route's prefix with CIDR, In and NotIn ask whether it lies inside.
	CIDR          string `json:"cidr,omitempty"`
	MatchOperator string `json:"matchOperator,omitempty"`
	// PrefixLength bounds the length of the prefixes an In (NotIn) match
	// takes in; alone, it matches every prefix of a length in range.
	PrefixLength *BGPFilterPrefixLength `json:"prefixLength,omitempty"`
	// Source RemotePeers matches routes learned from BGP peers (not the
	// ones this host originates).
	Source string `json:"source,omitempty"`
	// Interface matches routes BIRD learns from local interfaces; Serval
	// has none such and refuses it (see Validate).
	Interface string `json:"interface,omitempty"`
	// Action: Accept or Reject.
	Action string `json:"action,omitempty"`
}

// BGPFilterPrefixLength is an inclusive range of prefix lengths.
type BGPFilterPrefixLength struct {
	Min *int32 `json:"min,omitempty"`
	Max *int32 `json:"max,omitempty"`
}

// Values of BGPFilterRule fields.
const (
	BGPFilterAccept       = "Accept"
	BGPFilterReject       = "Reject"
	BGPFilterEqual        = "Equal"
	BGPFilterNotEqual     = "NotEqual"
	BGPFilterIn           = "In"
	BGPFilterNotIn        = "NotIn"
	BGPFilterRemotePeers  = "RemotePeers"
	bgpFilterInterfaceWhy = "is not supported: Serval's BGP never exports routes learned from interfaces (it originates IPAM blocks, borrowed workload addresses and service ranges), so an interface match cannot be honoured; use cidr matches"
)

func init() {
	Register(KindInfo{
		Kind:       "BGPFilter",
		Plural:     "bgpfilters",
		ShortNames: []string{"bgpfilter", "bgpf", "bgpfs"},
		New:        func() Resource { return &BGPFilter{} },
	})
}

// SetDefaults sets nothing: an unset prefixLength bound means the cidr's
// own length (min) or the family's full length (max), which is how the
// rule is read, not a value Calico writes down.
func (f *BGPFilter) SetDefaults() {}

// Validate checks every rule of the four lists.
func (f *BGPFilter) Validate() ErrorList {
	var errs ErrorList
	p := Path("spec")
	for _, l := range []struct {
		name   string
		rules  []BGPFilterRule
		v6     bool
		export bool
	}{
		{"exportV4", f.Spec.ExportV4, false, true}, {"importV4", f.Spec.ImportV4, false, false},
		{"exportV6", f.Spec.ExportV6, true, true}, {"importV6", f.Spec.ImportV6, true, false},
	} {
		for i := range l.rules {
			validateBGPFilterRule(&errs, p.Child(l.name).Index(i), &l.rules[i], l.v6)
		}
	}
	return errs
}

func validateBGPFilterRule(errs *ErrorList, p Path, r *BGPFilterRule, v6 bool) {
	if r.Action == "" {
		errs.Required(p.Child("action"))
	} else {
		checkEnum(errs, p.Child("action"), r.Action, BGPFilterAccept, BGPFilterReject)
	}
	maxLen := int32(32)
	version := 4
	if v6 {
		maxLen, version = 128, 6
	}
	cidrBits := int32(-1)
	switch {
	case r.CIDR != "" && r.MatchOperator == "":
		errs.Add(p.Child("matchOperator"), "is required with cidr")
	case r.CIDR == "" && r.MatchOperator != "":
		errs.Add(p.Child("cidr"), "is required with matchOperator")
	}
	if r.MatchOperator != "" {
		checkEnum(errs, p.Child("matchOperator"), r.MatchOperator, BGPFilterEqual, BGPFilterNotEqual, BGPFilterIn, BGPFilterNotIn)
	}
	if r.CIDR != "" {
		c, err := netip.ParsePrefix(r.CIDR)
		switch {
		case err != nil:
			errs.Invalid(p.Child("cidr"), r.CIDR, fmt.Sprintf("is not a valid IPv%d CIDR", version))
		case c.Addr().Is4() == v6 || c.Addr().Is4In6():
			errs.Invalid(p.Child("cidr"), r.CIDR, fmt.Sprintf("is not an IPv%d CIDR (this list is for IPv%d routes)", version, version))
		case c.Masked() != c:
			errs.Invalid(p.Child("cidr"), r.CIDR, fmt.Sprintf("is not a valid network: host bits are set (did you mean %s?)", c.Masked()))
		default:
			cidrBits = int32(c.Bits())
		}
	}
	if pl := r.PrefixLength; pl != nil {
		pp := p.Child("prefixLength")
		if r.MatchOperator == BGPFilterEqual || r.MatchOperator == BGPFilterNotEqual {
			errs.Add(pp, "must not be set with matchOperator %s: the prefix length of an exact match is the cidr's", r.MatchOperator)
		}
		lo, hi := int32(0), maxLen
		if pl.Min != nil {
			lo = *pl.Min
			switch {
			case lo < 0 || lo > maxLen:
				errs.Invalid(pp.Child("min"), lo, fmt.Sprintf("is not a valid IPv%d prefix length (0-%d)", version, maxLen))
			case cidrBits >= 0 && lo < cidrBits:
				errs.Invalid(pp.Child("min"), lo, fmt.Sprintf("is shorter than the cidr's own length %d: no prefix that short lies inside %s", cidrBits, r.CIDR))
			}
		}
		if pl.Max != nil {
			hi = *pl.Max
			switch {
			case hi < 0 || hi > maxLen:
				errs.Invalid(pp.Child("max"), hi, fmt.Sprintf("is not a valid IPv%d prefix length (0-%d)", version, maxLen))
			case cidrBits >= 0 && hi < cidrBits:
				errs.Invalid(pp.Child("max"), hi, fmt.Sprintf("is shorter than the cidr's own length %d: no prefix that short lies inside %s", cidrBits, r.CIDR))
			}
		}
		if pl.Min != nil && pl.Max != nil && lo > hi {
			errs.Add(pp, "min %d is greater than max %d", lo, hi)
		}
	}
	if r.Source != "" {
		checkEnum(errs, p.Child("source"), r.Source, BGPFilterRemotePeers)
	}
	if r.Interface != "" {
		errs.Invalid(p.Child("interface"), r.Interface, bgpFilterInterfaceWhy)
	}
}
