package dataplane

import (
	"iter"
	"net"
	"net/netip"
	"sort"

	"github.com/servalnet/serval/internal/hoststate"
)

// Names of the table's fixed objects. Per-object chains and sets get a
// prefix and a short hash of the hoststate ID (see the *ChainName helpers).
const (
	chainForward    = "forward"
	chainInput      = "input"
	chainOutput     = "output"
	chainPrerouting = "prerouting"
	chainRawPre     = "raw-prerouting"
	chainRawOut     = "raw-output"
	chainNATPost    = "nat-postrouting"

	mapWlFrom     = "wl-from"     // iifname → from-workload chain (egress policy)
	mapWlTo       = "wl-to"       // oifname → to-workload chain (ingress policy)
	mapHepIn      = "hep-in"      // host endpoint ingress (input hook)
	mapHepOut     = "hep-out"     // host endpoint egress (output hook)
	mapHepFwdIn   = "hep-fwd-in"  // applyOnForward, arriving on the interface
	mapHepFwdOut  = "hep-fwd-out" // applyOnForward, leaving by the interface
	mapHepPreDNAT = "hep-prednat" // preDNAT (ingress only)
	mapHepRawIn   = "hep-raw-in"  // doNotTrack ingress
	mapHepRawOut  = "hep-raw-out" // doNotTrack egress

	setPools4    = "pools4"
	setPools6    = "pools6"
	setNATPools4 = "natpools4"
	setNATPools6 = "natpools6"
)

var allMaps = []string{mapWlFrom, mapWlTo, mapHepIn, mapHepOut, mapHepFwdIn, mapHepFwdOut, mapHepPreDNAT, mapHepRawIn, mapHepRawOut}

// ICMPv6 neighbour discovery and MLD types that must pass between a
// workload and its host whatever the policy, or IPv6 stops working.
var icmpv6NDTypes = []uint8{130, 131, 132, 133, 135, 136}

func policyKey(id hoststate.PolicyID) string { return id.Tier + "/" + id.Kind + "/" + id.Name }

func policyChainName(id hoststate.PolicyID, inbound bool) string {
	if inbound {
		return "pi-" + shortHash(policyKey(id))
	}
	return "po-" + shortHash(policyKey(id))
}

func profileChainName(name string, inbound bool) string {
	if inbound {
		return "ri-" + shortHash(name)
	}
	return "ro-" + shortHash(name)
}

// ipSetName is the kernel name of the v4 or v6 half of a hoststate set:
// one hoststate set holds both families, a kernel set only one.
func ipSetName(id string, fam int) string {
	if fam == v6 {
		return "s6-" + shortHash(id)
	}
	return "s4-" + shortHash(id)
}

func setKindFor(t hoststate.IPSetType, fam int) setKind {
	switch {
	case t == hoststate.IPSetNetPorts && fam == v6:
		return kindAddrPort6
	case t == hoststate.IPSetNetPorts:
		return kindAddrPort4
	case fam == v6:
		return kindAddr6
	}
	return kindAddr4
}

// renderIPSet turns one hoststate set into its two kernel sets.
func renderIPSet(s hoststate.IPSet, members iter.Seq[hoststate.IPSetMember]) []*set {
	out := make([]*set, 0, 2)
	for _, fam := range []int{v4, v6} {
		ks := &set{Name: ipSetName(s.ID, fam), Kind: setKindFor(s.Type, fam), Comment: s.ID, Elems: map[elem]struct{}{}}
		if s.Type == hoststate.IPSetNetPorts {
			for m := range members {
				if famOf(m.Prefix) != fam || !m.Prefix.IsSingleIP() {
					// A named port belongs to an endpoint address; a wider
					// prefix cannot come from calc and would need an
					// interval concatenation, so it is left out.
					continue
				}
				ks.Elems[elem{from: pack(m.Prefix.Addr()), Proto: m.Protocol, Port: m.Port}] = struct{}{}
			}
		} else {
			var ps []netip.Prefix
			for m := range members {
				if famOf(m.Prefix) == fam {
					ps = append(ps, m.Prefix)
				}
			}
			for _, e := range intervalsOf(ps) {
				ks.Elems[e] = struct{}{}
			}
		}
		out = append(out, ks)
	}
	return out
}

func famOf(p netip.Prefix) int {
	if p.Addr().Is4() || p.Addr().Is4In6() {
		return v4
	}
	return v6
}

func filterFam(ps []netip.Prefix, fam int) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.IsValid() && famOf(p) == fam {
			out = append(out, p.Masked())
		}
	}
	return out
}

// knownSets reports which hoststate set IDs exist; rules that name an
// unknown set are rendered as if the set were empty (a positive match
// cannot match; a negative one always does), so that one late set can never
// make the kernel reject the whole transaction.
type knownSets func(id string) bool

// renderRules renders the rules of one direction of a policy or profile;
// logAct is what the Log action does (see logAction).
func renderRules(rules []hoststate.Rule, logAct []stmt, known knownSets) []rule {
	var out []rule
	for _, r := range rules {
		var action []stmt
		switch r.Action {
		case hoststate.Allow:
			action = []stmt{sSetMark{Set: MarkAccept}, vReturn}
		case hoststate.Deny:
			action = []stmt{vDrop}
		case hoststate.Pass:
			action = []stmt{sSetMark{Set: MarkPass}, vReturn}
		case hoststate.Log:
			action = logAct
		default:
			// An action calc does not know cannot be enforced safely
			// either way; deny is Calico's answer to "not allowed".
			action = []stmt{vDrop}
		}
		for _, m := range ruleMatches(r, known) {
			st := make([]stmt, 0, len(m)+len(action))
			st = append(st, m...)
			st = append(st, action...)
			out = append(out, rule{Stmts: st, Comment: r.ID})
		}
	}
	return out
}

// needsFamily reports whether a rule has any criterion bound to one IP
// family, in which case it is rendered once per family.
func needsFamily(r hoststate.Rule) bool {
	return r.IPVersion != 0 || len(r.SrcNets)+len(r.NotSrcNets)+len(r.DstNets)+len(r.NotDstNets) > 0 ||
		len(r.SrcIPSetIDs)+len(r.NotSrcIPSetIDs)+len(r.DstIPSetIDs)+len(r.NotDstIPSetIDs) > 0 ||
		len(r.SrcNamedPortIPSetIDs)+len(r.NotSrcNamedPortIPSetIDs)+len(r.DstNamedPortIPSetIDs)+len(r.NotDstNamedPortIPSetIDs) > 0 ||
		r.ICMPType != nil || r.NotICMPType != nil ||
		(r.Protocol != nil && (*r.Protocol == 1 || *r.Protocol == 58))
}

// ruleMatches returns the alternatives (OR) that together express one
// hoststate rule; each is a list of matches (AND). Alternatives come from IP
// families and from "numeric ports or named ports".
func ruleMatches(r hoststate.Rule, known knownSets) [][]stmt {
	fams := []int{0}
	if needsFamily(r) {
		fams = []int{v4, v6}
	}
	var out [][]stmt
	for _, fam := range fams {
		if fam != 0 && r.IPVersion != 0 && r.IPVersion != fam {
			continue
		}
		if r.Protocol != nil && ((*r.Protocol == 1 && fam == v6) || (*r.Protocol == 58 && fam == v4)) {
			continue
		}
		var m []stmt
		if fam != 0 {
			m = append(m, mNfproto{Fam: fam})
		}
		hasPorts := len(r.SrcPorts)+len(r.NotSrcPorts)+len(r.DstPorts)+len(r.NotDstPorts) > 0
		switch {
		case r.Protocol != nil:
			m = append(m, mL4proto{Protos: []uint8{*r.Protocol}})
		case r.ICMPType != nil || r.NotICMPType != nil:
			m = append(m, mL4proto{Protos: []uint8{icmpProto(fam)}})
		case hasPorts:
			// Ports mean nothing without a transport header with ports.
			m = append(m, mL4proto{Protos: []uint8{6, 17, 132, 136}})
		}
		if r.NotProtocol != nil {
			m = append(m, mL4proto{Protos: []uint8{*r.NotProtocol}, Neg: true})
		}
		if r.ICMPType != nil {
			m = append(m, mICMP{Fam: fam, Type: *r.ICMPType, Code: r.ICMPCode})
		}
		if r.NotICMPType != nil {
			m = append(m, mICMP{Fam: fam, Type: *r.NotICMPType, Code: r.NotICMPCode, Neg: true})
		}
		ok := true
		for _, side := range []struct {
			dst       bool
			nets, not []netip.Prefix
			ids, nids []string
		}{{false, r.SrcNets, r.NotSrcNets, r.SrcIPSetIDs, r.NotSrcIPSetIDs}, {true, r.DstNets, r.NotDstNets, r.DstIPSetIDs, r.NotDstIPSetIDs}} {
			if len(side.nets) > 0 {
				ps := filterFam(side.nets, fam)
				if len(ps) == 0 {
					ok = false // no net of this family: this variant cannot match
					break
				}
				m = append(m, mAddr{Fam: fam, Dst: side.dst, Prefixes: normPrefixes(ps)})
			}
			if ps := filterFam(side.not, fam); len(ps) > 0 {
				m = append(m, mAddr{Fam: fam, Dst: side.dst, Prefixes: normPrefixes(ps), Neg: true})
			}
			for _, id := range side.ids {
				if !known(id) {
					ok = false
					break
				}
				m = append(m, mSet{Fam: fam, Dst: side.dst, Set: ipSetName(id, fam)})
			}
			for _, id := range side.nids {
				if known(id) {
					m = append(m, mSet{Fam: fam, Dst: side.dst, Set: ipSetName(id, fam), Neg: true})
				}
			}
		}
		if !ok {
			continue
		}
		for _, side := range []struct {
			dst          bool
			ports, not   []hoststate.PortRange
			named, nnamd []string
		}{{false, r.SrcPorts, r.NotSrcPorts, r.SrcNamedPortIPSetIDs, r.NotSrcNamedPortIPSetIDs}, {true, r.DstPorts, r.NotDstPorts, r.DstNamedPortIPSetIDs, r.NotDstNamedPortIPSetIDs}} {
			if len(side.not) > 0 {
				m = append(m, mPorts{Dst: side.dst, Ranges: normPorts(side.not), Neg: true})
			}
			for _, id := range side.nnamd {
				if known(id) && fam != 0 {
					m = append(m, mSet{Fam: fam, Dst: side.dst, Set: ipSetName(id, fam), Neg: true, Port: true})
				}
			}
		}
		// Positive ports: numeric ports OR any named-port set. Each
		// alternative becomes its own rule; the cross product of the
		// source and destination alternatives covers every combination.
		srcAlts := portAlts(false, r.SrcPorts, r.SrcNamedPortIPSetIDs, fam, known)
		dstAlts := portAlts(true, r.DstPorts, r.DstNamedPortIPSetIDs, fam, known)
		for _, sa := range srcAlts {
			for _, da := range dstAlts {
				v := make([]stmt, 0, len(m)+2)
				v = append(v, m...)
				v = append(v, sa...)
				v = append(v, da...)
				out = append(out, v)
			}
		}
	}
	return out
}

func icmpProto(fam int) uint8 {
	if fam == v6 {
		return 58
	}
	return 1
}

// portAlts lists the alternatives for one side's positive port criteria;
// no criterion is one empty alternative, criteria that cannot match (only
// unknown named-port sets) are none.
func portAlts(dst bool, ports []hoststate.PortRange, named []string, fam int, known knownSets) [][]stmt {
	if len(ports) == 0 && len(named) == 0 {
		return [][]stmt{nil}
	}
	var alts [][]stmt
	if len(ports) > 0 {
		alts = append(alts, []stmt{mPorts{Dst: dst, Ranges: normPorts(ports)}})
	}
	for _, id := range named {
		if known(id) && fam != 0 {
			alts = append(alts, []stmt{mSet{Fam: fam, Dst: dst, Set: ipSetName(id, fam), Port: true}})
		}
	}
	return alts
}

// normPorts sorts port ranges and merges overlapping ones: an anonymous
// interval set may not hold overlapping elements.
func normPorts(in []hoststate.PortRange) []portRange {
	rs := make([]portRange, 0, len(in))
	for _, r := range in {
		if r.Last < r.First {
			r.First, r.Last = r.Last, r.First
		}
		rs = append(rs, portRange{r.First, r.Last})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.First) <= int(out[n-1].Last)+0 {
			if r.Last > out[n-1].Last {
				out[n-1].Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// normPrefixes returns prefixes sorted with those covered by another
// dropped, for the same reason as normPorts.
func normPrefixes(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, e := range intervalsOf(ps) {
		if p, ok := rangeToPrefix(e.From(), e.To()); ok {
			out = append(out, p)
			continue
		}
		// Two overlapping prefixes merge into their larger one, so a
		// merged range is always a prefix; keep both ends to be safe.
		out = append(out, netip.PrefixFrom(e.From(), e.From().BitLen()), netip.PrefixFrom(e.To(), e.To().BitLen()))
	}
	return out
}

// tierOpts says how the tiers of one endpoint chain end.
type tierOpts struct {
	inbound bool
	// endOfTierDrop: a tier whose policies matched nothing ends in its
	// default action. Calico applies it to normal and forward policy, not
	// to preDNAT or untracked policy, which fall through to normal policy.
	endOfTierDrop bool
}

// compiler lets renderTiers compile runs of policies (see compile.go):
// shape says how a policy direction renders, run registers a run for the
// endpoint being rendered and returns its key.
type compiler struct {
	shape func(id hoststate.PolicyID, inbound bool) policyShape
	run   func(inbound bool, pols []hoststate.PolicyID) string
}

// renderTiers renders the tier walk of one endpoint chain. Policy chains
// return with MarkAccept (allow) or MarkPass (pass) set, or drop: after each
// jump an accepted packet returns to the dispatcher; a passed one skips the
// rest of its tier (the guards test the mark) and the mark is cleared at
// the start of the next tier.
func renderTiers(tiers []hoststate.TierPolicies, o tierOpts, policyKnown func(hoststate.PolicyID) bool, comp *compiler) []rule {
	var out []rule
	for _, t := range tiers {
		pols := t.EgressPolicies
		if o.inbound {
			pols = t.IngressPolicies
		}
		var known []hoststate.PolicyID
		for _, p := range pols {
			if policyKnown(p) {
				known = append(known, p)
			}
		}
		if len(known) == 0 {
			continue // a tier with no policy for this endpoint is skipped
		}
		out = append(out, rule{Stmts: []stmt{sSetMark{Clear: MarkPass}}, Comment: "tier " + t.Name})
		first := true
		guard := func() []stmt {
			if first {
				first = false
				return nil // the pass bit was just cleared
			}
			return []stmt{mMark{Mask: MarkPass, Value: 0}}
		}
		for i := 0; i < len(known); {
			p := known[i]
			if comp != nil && comp.shape(p, o.inbound).Compiles {
				// Gather the run: compiling policies with one action;
				// those without rules match nothing and join any run.
				j, act := i, hoststate.Action("")
				for ; j < len(known); j++ {
					sh := comp.shape(known[j], o.inbound)
					if !sh.Compiles || (sh.Act != "" && act != "" && sh.Act != act) {
						break
					}
					if sh.Act != "" {
						act = sh.Act
					}
				}
				pols := known[i:j]
				i = j
				if act == "" {
					continue // only policies without rules: nothing to test
				}
				out = append(out, runRules(comp.run(o.inbound, pols), o.inbound, act, pols, guard())...)
				continue
			}
			i++
			j := vJump(policyChainName(p, o.inbound))
			out = append(out, rule{Stmts: append(guard(), j), Comment: p.Name})
			out = append(out, rule{Stmts: []stmt{mMark{Mask: MarkAccept, Value: MarkAccept}, vReturn}})
		}
		if o.endOfTierDrop && t.DefaultAction != hoststate.Pass {
			out = append(out, rule{Stmts: []stmt{mMark{Mask: MarkPass, Value: 0}, vDrop}, Comment: "end of tier " + t.Name})
		}
	}
	return out
}

func renderProfiles(ids []string, inbound bool, known func(string) bool) []rule {
	var out []rule
	for _, id := range ids {
		if !known(id) {
			continue
		}
		out = append(out,
			rule{Stmts: []stmt{sSetMark{Clear: MarkPass}, vJump(profileChainName(id, inbound))}, Comment: "profile " + id},
			rule{Stmts: []stmt{mMark{Mask: MarkAccept, Value: MarkAccept}, vReturn}})
	}
	return out
}

func clearMarks() rule { return rule{Stmts: []stmt{sSetMark{Clear: markOurs}}} }

// antiSpoof drops packets from a workload whose source is not one of its
// addresses (or, with allowSpoof, of its allowSpoofedSourcePrefixes), or,
// when its MAC is known, not its MAC; a workload without an address of a
// family sends none of it.
func antiSpoof(ep hoststate.WorkloadEndpoint, allowSpoof bool) []rule {
	ep = withSpoofedPrefixes(ep, allowSpoof)
	var out []rule
	if mac, err := net.ParseMAC(ep.MAC); err == nil && len(mac) == 6 {
		out = append(out, rule{Stmts: []stmt{mEtherSrc{MAC: mac, Neg: true}, vDrop}, Comment: "anti-spoof mac"})
	}
	for _, f := range []struct {
		fam  int
		nets []netip.Prefix
	}{{v4, ep.IPv4Nets}, {v6, ep.IPv6Nets}} {
		ps := filterFam(f.nets, f.fam)
		if len(ps) == 0 {
			out = append(out, rule{Stmts: []stmt{mNfproto{Fam: f.fam}, vDrop}, Comment: "anti-spoof"})
			continue
		}
		out = append(out, rule{Stmts: []stmt{mNfproto{Fam: f.fam}, mAddr{Fam: f.fam, Prefixes: normPrefixes(ps), Neg: true}, vDrop}, Comment: "anti-spoof"})
	}
	return out
}

func fromWorkloadChainName(id hoststate.EndpointID) string { return "fw-" + shortHash(string(id)) }
func toWorkloadChainName(id hoststate.EndpointID) string   { return "tw-" + shortHash(string(id)) }

// hepChainName names the chain of one host endpoint for one of its maps.
func hepChainName(id hoststate.EndpointID, mapName string) string {
	pre := map[string]string{
		mapHepIn: "hi-", mapHepOut: "ho-", mapHepFwdIn: "hfi-", mapHepFwdOut: "hfo-",
		mapHepPreDNAT: "hpi-", mapHepRawIn: "hri-", mapHepRawOut: "hro-",
	}[mapName]
	return pre + shortHash("hep:"+string(id))
}

// hasPolicies reports whether any tier has a policy for the direction.
func hasPolicies(tiers []hoststate.TierPolicies, inbound bool) bool {
	for _, t := range tiers {
		if inbound && len(t.IngressPolicies) > 0 || !inbound && len(t.EgressPolicies) > 0 {
			return true
		}
	}
	return false
}

// portMatch renders a failsafe port's match.
func failsafeRules(pps []hoststate.ProtoPort, out bool) []rule {
	var rs []rule
	for _, pp := range pps {
		st := []stmt{}
		if pp.Net.IsValid() {
			fam := famOf(pp.Net)
			st = append(st, mNfproto{Fam: fam}, mAddr{Fam: fam, Dst: out, Prefixes: []netip.Prefix{pp.Net.Masked()}})
		}
		st = append(st, mL4proto{Protos: []uint8{pp.Protocol}}, mPorts{Dst: true, Ranges: []portRange{{pp.Port, pp.Port}}}, vAccept)
		rs = append(rs, rule{Stmts: st, Comment: "failsafe"})
	}
	return rs
}
