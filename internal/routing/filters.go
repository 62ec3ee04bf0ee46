package routing

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	gobgp "github.com/osrg/gobgp/v3/api"

	"github.com/servalnet/serval/internal/api"
)

// FilterRule is one BGPFilter rule, resolved for one session: Calico's
// semantics, ready to become a GoBGP policy statement. The rules of a
// session are tried in order; the first that matches decides, and a route
// no rule matches is accepted.
type FilterRule struct {
	Reject bool
	// Op is "" (no prefix match) or one of api.BGPFilterEqual, NotEqual,
	// In, NotIn.
	Op string
	// CIDR is the rule's cidr; with Op "" and a length range it is the
	// family's whole space.
	CIDR netip.Prefix
	// MinLen and MaxLen bound the prefix length an In/NotIn match takes in
	// (an Equal/NotEqual match has both at CIDR's length).
	MinLen, MaxLen int
	// RemoteOnly matches routes learned from BGP peers only (source
	// RemotePeers on an export rule; on import every route is remote).
	RemoteOnly bool
	// From names the rule for logs and status: "bgpfilter/f exportV4[0]".
	From string
}

// PeerFilters are the BGPFilter rules of one session, per direction.
type PeerFilters struct {
	Import, Export []FilterRule
}

// resolveFilters turns a BGPPeer's filter names into the rules of a
// session of family v6. A name without a BGPFilter, or a rule Serval
// cannot honour, is an error: the caller skips the session rather than
// let routes through unfiltered.
func resolveFilters(names []string, byName map[string]*api.BGPFilter, v6 bool) (PeerFilters, error) {
	var out PeerFilters
	for _, name := range names {
		f := byName[name]
		if f == nil {
			return PeerFilters{}, fmt.Errorf("filter %q: no such BGPFilter", name)
		}
		imp, exp, fam := f.Spec.ImportV4, f.Spec.ExportV4, "V4"
		if v6 {
			imp, exp, fam = f.Spec.ImportV6, f.Spec.ExportV6, "V6"
		}
		for _, l := range []struct {
			dir    string
			rules  []api.BGPFilterRule
			dst    *[]FilterRule
			export bool
		}{{"import", imp, &out.Import, false}, {"export", exp, &out.Export, true}} {
			for i := range l.rules {
				where := fmt.Sprintf("bgpfilter/%s spec.%s%s[%d]", name, l.dir, fam, i)
				r, err := resolveRule(&l.rules[i], v6, l.export)
				if err != nil {
					return PeerFilters{}, fmt.Errorf("%s: %w", where, err)
				}
				r.From = where
				*l.dst = append(*l.dst, r)
			}
		}
	}
	return out, nil
}

// resolveRule checks one rule again (it may have been written to the
// datastore behind servalctl's back) and resolves its defaults.
func resolveRule(r *api.BGPFilterRule, v6, export bool) (FilterRule, error) {
	var out FilterRule
	switch r.Action {
	case api.BGPFilterAccept:
	case api.BGPFilterReject:
		out.Reject = true
	default:
		return out, fmt.Errorf("action %q is neither Accept nor Reject", r.Action)
	}
	if r.Interface != "" {
		return out, fmt.Errorf("interface %q: interface matches are not supported (Serval exports no interface routes)", r.Interface)
	}
	switch r.Source {
	case "":
	case api.BGPFilterRemotePeers:
		// Every imported route comes from the peer: the match is always true.
		out.RemoteOnly = export
	default:
		return out, fmt.Errorf("source %q is not RemotePeers", r.Source)
	}
	full := 32
	out.CIDR = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if v6 {
		full = 128
		out.CIDR = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if (r.CIDR == "") != (r.MatchOperator == "") {
		return out, fmt.Errorf("cidr and matchOperator must be set together")
	}
	if r.CIDR != "" {
		c, err := netip.ParsePrefix(r.CIDR)
		if err != nil || c.Addr().Is6() != v6 || c.Masked() != c {
			return out, fmt.Errorf("cidr %q is not an IPv%d network", r.CIDR, map[bool]int{false: 4, true: 6}[v6])
		}
		out.CIDR, out.Op = c, r.MatchOperator
	}
	out.MinLen, out.MaxLen = out.CIDR.Bits(), full
	switch out.Op {
	case api.BGPFilterEqual, api.BGPFilterNotEqual:
		out.MaxLen = out.CIDR.Bits()
		if r.PrefixLength != nil {
			return out, fmt.Errorf("prefixLength does not go with matchOperator %s", out.Op)
		}
	case api.BGPFilterIn, api.BGPFilterNotIn, "":
	default:
		return out, fmt.Errorf("matchOperator %q is not one of Equal, NotEqual, In, NotIn", r.MatchOperator)
	}
	if pl := r.PrefixLength; pl != nil {
		if pl.Min != nil {
			out.MinLen = int(*pl.Min)
		}
		if pl.Max != nil {
			out.MaxLen = int(*pl.Max)
		}
		if out.MinLen < out.CIDR.Bits() || out.MaxLen > full || out.MinLen > out.MaxLen {
			return out, fmt.Errorf("prefixLength %d-%d is not a range inside %s (lengths %d-%d)", out.MinLen, out.MaxLen, out.CIDR, out.CIDR.Bits(), full)
		}
		if out.Op == "" {
			out.Op = api.BGPFilterIn // a length range alone: In the whole space
		}
	}
	return out, nil
}

// Names of the GoBGP policies that carry the BGPFilters.
const (
	filterImportPolicy = "serval-filters-import"
	filterExportPolicy = "serval-filters-export"
)

// filterPolicies renders every session's filters as two GoBGP policies.
// GoBGP policies are global, so each statement is limited to its session
// by a neighbor set, and to the session's family. A statement with a route
// action ends the evaluation when it matches, which gives Calico's "first
// matching rule wins"; a route no statement matches falls through to the
// assignment's default, Accept. A rule that is an OR in GoBGP's terms
// (source RemotePeers: iBGP or eBGP routes) becomes adjacent statements
// with the same action, which keeps the order's meaning.
func filterPolicies(peers []Peer) (sets []*gobgp.DefinedSet, imp, exp *gobgp.Policy) {
	imp, exp = &gobgp.Policy{Name: filterImportPolicy}, &gobgp.Policy{Name: filterExportPolicy}
	prefixSets := map[string]string{} // content → name
	for _, p := range peers {
		if len(p.Filters.Import) == 0 && len(p.Filters.Export) == 0 {
			continue
		}
		nset := "serval-peer-" + p.Address.String()
		sets = append(sets, &gobgp.DefinedSet{DefinedType: gobgp.DefinedType_NEIGHBOR, Name: nset, List: []string{netip.PrefixFrom(p.Address, p.Address.BitLen()).String()}})
		fam := familyOf(p.Address)
		for _, dir := range []struct {
			pol   *gobgp.Policy
			rules []FilterRule
			tag   string
		}{{imp, p.Filters.Import, "import"}, {exp, p.Filters.Export, "export"}} {
			for i, r := range dir.rules {
				cond := &gobgp.Conditions{
					NeighborSet: &gobgp.MatchSet{Type: gobgp.MatchSet_ANY, Name: nset},
					AfiSafiIn:   []*gobgp.Family{fam},
				}
				if r.Op != "" {
					content := fmt.Sprintf("%s %d..%d", r.CIDR, r.MinLen, r.MaxLen)
					name, ok := prefixSets[content]
					if !ok {
						name = fmt.Sprintf("serval-prefixes-%d", len(prefixSets))
						prefixSets[content] = name
						sets = append(sets, &gobgp.DefinedSet{DefinedType: gobgp.DefinedType_PREFIX, Name: name, Prefixes: []*gobgp.Prefix{{
							IpPrefix: r.CIDR.String(), MaskLengthMin: uint32(r.MinLen), MaskLengthMax: uint32(r.MaxLen),
						}}})
					}
					mt := gobgp.MatchSet_ANY
					if r.Op == api.BGPFilterNotEqual || r.Op == api.BGPFilterNotIn {
						mt = gobgp.MatchSet_INVERT
					}
					cond.PrefixSet = &gobgp.MatchSet{Type: mt, Name: name}
				}
				action := gobgp.RouteAction_ACCEPT
				if r.Reject {
					action = gobgp.RouteAction_REJECT
				}
				routeTypes := []gobgp.Conditions_RouteType{gobgp.Conditions_ROUTE_TYPE_NONE}
				if r.RemoteOnly {
					routeTypes = []gobgp.Conditions_RouteType{gobgp.Conditions_ROUTE_TYPE_INTERNAL, gobgp.Conditions_ROUTE_TYPE_EXTERNAL}
				}
				for j, rt := range routeTypes {
					c := cloneConditions(cond)
					c.RouteType = rt
					dir.pol.Statements = append(dir.pol.Statements, &gobgp.Statement{
						Name:       fmt.Sprintf("%s-%s-%d.%d", nset, dir.tag, i, j),
						Conditions: c,
						Actions:    &gobgp.Actions{RouteAction: action},
					})
				}
			}
		}
	}
	slices.SortStableFunc(sets, func(a, b *gobgp.DefinedSet) int { return strings.Compare(a.Name, b.Name) })
	return sets, imp, exp
}

func cloneConditions(c *gobgp.Conditions) *gobgp.Conditions {
	return &gobgp.Conditions{NeighborSet: c.NeighborSet, AfiSafiIn: c.AfiSafiIn, PrefixSet: c.PrefixSet}
}
