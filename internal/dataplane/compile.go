package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/servalnet/serval/internal/hoststate"
)

// This file compiles runs of policies into set lookups, so that the first
// packet of a connection costs one lookup per run instead of one jump (and
// one mark test) per policy.
//
// A policy direction "compiles" when every one of its rules has the same
// terminating action (Allow, Deny or Pass) and matches only on a protocol
// with ports, destination ports and at most one address criterion on the
// peer side (source for ingress, destination for egress: one net list or
// one IP set). Consecutive compiling policies of a tier with the same
// action form a run: whichever rule of the run matches, the outcome is the
// action, so the run is the union of its rules, whatever their order. The
// union is a named set of "peer address . l4proto . dport" intervals per
// IP family, made disjoint (the kernel refuses overlapping elements), and
// the endpoint chain tests it once. Anything else — Log rules, negations,
// ICMP, named ports, source ports, a rule of another action in the same
// policy — stays a jump to the policy chain, in order: a run never crosses
// a policy that does not compile, so evaluation order is Calico's.
//
// Runs are named by their direction and policy list, so endpoints with the
// same policies share one set; a policy change that keeps its shape only
// changes set elements, and an IP set change updates the runs using it.

// portProtos are the protocols whose transport header starts with ports;
// "ports without protocol" means any of them, as in renderRules.
var portProtos = []uint8{6, 17, 132, 136}

// peerSide returns the address criteria of the peer side of a rule and
// whether the other side has none (for ingress the peer is the source).
func peerSide(r hoststate.Rule, inbound bool) (nets []netip.Prefix, ids []string, otherEmpty bool) {
	if inbound {
		return r.SrcNets, r.SrcIPSetIDs, len(r.DstNets) == 0 && len(r.DstIPSetIDs) == 0
	}
	return r.DstNets, r.DstIPSetIDs, len(r.SrcNets) == 0 && len(r.SrcIPSetIDs) == 0
}

// ruleCompiles reports whether one rule can be an element list of a run.
func ruleCompiles(r hoststate.Rule, inbound bool) bool {
	switch r.Action {
	case hoststate.Allow, hoststate.Deny, hoststate.Pass:
	default:
		return false
	}
	if r.NotProtocol != nil || r.ICMPType != nil || r.NotICMPType != nil ||
		len(r.NotSrcNets)+len(r.NotDstNets)+len(r.NotSrcIPSetIDs)+len(r.NotDstIPSetIDs) > 0 ||
		len(r.SrcPorts)+len(r.NotSrcPorts)+len(r.NotDstPorts) > 0 ||
		len(r.SrcNamedPortIPSetIDs)+len(r.NotSrcNamedPortIPSetIDs)+len(r.DstNamedPortIPSetIDs)+len(r.NotDstNamedPortIPSetIDs) > 0 {
		return false
	}
	if r.IPVersion != 0 && r.IPVersion != v4 && r.IPVersion != v6 {
		return false
	}
	switch {
	case r.Protocol != nil:
		if !slices.Contains(portProtos, *r.Protocol) {
			// Other protocols have no port field to key on; a packet
			// without a transport header would fail the lookup.
			return false
		}
	case len(r.DstPorts) == 0:
		return false // any protocol: not expressible as a key
	}
	nets, ids, otherEmpty := peerSide(r, inbound)
	if !otherEmpty || len(ids) > 1 || (len(ids) == 1 && len(nets) > 0) {
		return false // two address criteria are an intersection
	}
	return true
}

// policyShape says how one direction of a policy renders: compiled with
// action act ("" when it has no rules and matches nothing) or not.
type policyShape struct {
	Act      hoststate.Action
	Compiles bool
}

func shapeOf(rules []hoststate.Rule, inbound bool) policyShape {
	var act hoststate.Action
	for _, r := range rules {
		if !ruleCompiles(r, inbound) || (act != "" && r.Action != act) {
			return policyShape{}
		}
		act = r.Action
	}
	return policyShape{Act: act, Compiles: true}
}

// runKey names a run by its direction and policies.
func runKey(inbound bool, pols []hoststate.PolicyID) string {
	var b strings.Builder
	if inbound {
		b.WriteString("in")
	} else {
		b.WriteString("out")
	}
	for _, p := range pols {
		b.WriteString("|" + policyKey(p))
	}
	return shortHash(b.String())
}

// runSetName names a run's set for a family: exact elements (one address,
// one port) go to a hash set ("e4-"), whose updates cost O(1) per element;
// ranges go to a concatenated interval set ("c4-"), which the kernel
// rebuilds on each change and which refuses overlapping elements.
func runSetName(key string, fam int, exact bool) string {
	p := "c"
	if exact {
		p = "e"
	}
	if fam == v6 {
		return p + "6-" + key
	}
	return p + "4-" + key
}

// runRules renders the endpoint-chain rules testing one run.
func runRules(key string, inbound bool, act hoststate.Action, pols []hoststate.PolicyID, guard []stmt) []rule {
	var action []stmt
	switch act {
	case hoststate.Allow:
		action = []stmt{sSetMark{Set: MarkAccept}, vReturn}
	case hoststate.Pass:
		action = []stmt{sSetMark{Set: MarkPass}}
	default:
		action = []stmt{vDrop}
	}
	comment := pols[0].Name
	if len(pols) > 1 {
		comment = fmt.Sprintf("%d policies %s..%s", len(pols), pols[0].Name, pols[len(pols)-1].Name)
	}
	var out []rule
	for _, fam := range []int{v4, v6} {
		for _, exact := range []bool{true, false} {
			st := slices.Clone(guard)
			st = append(st, mNfproto{Fam: fam}, mRun{Fam: fam, PeerDst: !inbound, Set: runSetName(key, fam, exact)})
			out = append(out, rule{Stmts: append(st, action...), Comment: comment})
		}
	}
	return out
}

// box is one rule's contribution for one protocol: a peer address range
// and a destination port range.
type box struct {
	from, to netip.Addr
	p0, p1   uint16
}

// exactTerm is one rule's share of a run's exact set that follows an IP
// set: every single-address member of the set, of the term's family,
// with one protocol and one port. A run keeps terms rather than their
// elements, so that a policy whose rule names a set of 2,000 endpoints
// costs one term, not 2,000 elements (times every policy of the run);
// the elements live once, in the run's set.
type exactTerm struct {
	set   string
	proto uint8
	port  uint16
}

// contribution is what one policy direction adds to a run's sets, per
// family (index 0: IPv4, 1: IPv6): terms that follow IP sets, elements
// of its own, and boxes by protocol.
type contribution struct {
	terms  [2][]exactTerm
	exact  [2][]elem
	boxes  [2]map[uint8][]box
	setIDs []string // the IP sets it was computed from, sorted
	// copied are the IP sets whose members went into exact or boxes
	// (sets holding ranges, rules with port ranges): a change of their
	// members recomputes the contribution.
	copied []string
}

func famIndex(fam int) int {
	if fam == v6 {
		return 1
	}
	return 0
}

// contribute computes one policy direction's contribution to a run.
// sets returns an IP set (nil for an unknown set, which matches nothing,
// as in renderRules; its terms then expand to nothing until it appears).
func contribute(rules []hoststate.Rule, inbound bool, sets func(id string) *ipsetState) *contribution {
	c := &contribution{}
	for _, r := range rules {
		_, ids, _ := peerSide(r, inbound)
		c.setIDs = append(c.setIDs, ids...)
	}
	slices.Sort(c.setIDs)
	c.setIDs = slices.Compact(c.setIDs)
	for _, fam := range []int{v4, v6} {
		fi := famIndex(fam)
		c.boxes[fi] = map[uint8][]box{}
		full := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if fam == v6 {
			full = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		for _, r := range rules {
			if r.IPVersion != 0 && r.IPVersion != fam {
				continue
			}
			nets, ids, _ := peerSide(r, inbound)
			protos := portProtos
			if r.Protocol != nil {
				protos = []uint8{*r.Protocol}
			}
			ports := []portRange{{0, 0xffff}}
			if len(r.DstPorts) > 0 {
				ports = normPorts(r.DstPorts)
			}
			var ranges []elem
			switch {
			case len(ids) == 1:
				st := sets(ids[0])
				ok := st != nil
				if !ok || st.ranges[fi] == 0 {
					// Single ports become terms; only port ranges need
					// the members copied (as boxes).
					var portRanges []portRange
					for _, p := range protos {
						for _, pr := range ports {
							if pr.First == pr.Last {
								c.terms[fi] = append(c.terms[fi], exactTerm{set: ids[0], proto: p, port: pr.First})
							} else if p == protos[0] {
								portRanges = append(portRanges, pr)
							}
						}
					}
					if !ok {
						// Boxes, if any, are computed when it appears.
						c.copied = append(c.copied, ids[0])
						continue
					}
					if len(portRanges) == 0 {
						continue
					}
					ports = portRanges
					for m := range st.all() {
						if m.Prefix.IsValid() && famOf(m.Prefix) == fam {
							ranges = append(ranges, elem{from: pack(m.Prefix.Addr()), to: pack(m.Prefix.Addr())})
						}
					}
				} else {
					var ps []netip.Prefix
					for m := range st.all() {
						if m.Prefix.IsValid() && famOf(m.Prefix) == fam {
							ps = append(ps, m.Prefix)
						}
					}
					ranges = intervalsOf(ps)
				}
				c.copied = append(c.copied, ids[0])
			case len(nets) > 0:
				ranges = intervalsOf(filterFam(nets, fam))
			default:
				ranges = intervalsOf([]netip.Prefix{full})
			}
			if len(ranges) == 0 {
				continue
			}
			for _, p := range protos {
				for _, pr := range ports {
					for _, a := range ranges {
						if a.from == a.to && pr.First == pr.Last {
							c.exact[fi] = append(c.exact[fi], elem{from: a.from, Proto: p, Port: pr.First})
							continue
						}
						c.boxes[fi][p] = append(c.boxes[fi][p], box{from: a.From(), to: a.To(), p0: pr.First, p1: pr.Last})
					}
				}
			}
		}
	}
	slices.Sort(c.copied)
	c.copied = slices.Compact(c.copied)
	return c
}

// rangeElems makes the disjoint interval-set elements of a family from
// every contribution's boxes.
func rangeElems(cs map[string]*contribution, fi int) map[elem]struct{} {
	byProto := map[uint8][]box{}
	for _, c := range cs {
		for p, bs := range c.boxes[fi] {
			byProto[p] = append(byProto[p], bs...)
		}
	}
	out := map[elem]struct{}{}
	for proto, bs := range byProto {
		for _, b := range disjoint(bs) {
			out[elem{from: pack(b.from), to: pack(b.to), Proto: proto, Port: b.p0, PortTo: b.p1, Run: true}] = struct{}{}
		}
	}
	return out
}

// disjoint turns boxes into non-overlapping boxes covering the same
// points. Boxes are grouped by port range first; when the port ranges do
// not overlap (the usual case: each rule its own ports, or all the same
// ports) each group's addresses merge on their own, otherwise the port
// axis is cut at every boundary.
func disjoint(bs []box) []box {
	type pr struct{ p0, p1 uint16 }
	groups := map[pr][]elem{}
	for _, b := range bs {
		k := pr{b.p0, b.p1}
		groups[k] = append(groups[k], elem{from: pack(b.from), to: pack(b.to)})
	}
	keys := make([]pr, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].p0 != keys[j].p0 {
			return keys[i].p0 < keys[j].p0
		}
		return keys[i].p1 < keys[j].p1
	})
	overlap := false
	for i := 1; i < len(keys); i++ {
		if keys[i].p0 <= keys[i-1].p1 {
			overlap = true
			break
		}
	}
	var out []box
	if !overlap {
		for _, k := range keys {
			for _, a := range mergeRanges(groups[k]) {
				out = append(out, box{from: a.From(), to: a.To(), p0: k.p0, p1: k.p1})
			}
		}
		return out
	}
	// Cut points: every start and every end+1.
	var cuts []int
	for _, k := range keys {
		cuts = append(cuts, int(k.p0), int(k.p1)+1)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var prev []elem
	segStart := -1
	flush := func(end int) {
		for _, a := range prev {
			out = append(out, box{from: a.From(), to: a.To(), p0: uint16(segStart), p1: uint16(end)})
		}
	}
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]-1
		var rs []elem
		for _, k := range keys {
			if int(k.p0) <= lo && int(k.p1) >= hi {
				rs = append(rs, groups[k]...)
			}
		}
		merged := mergeRanges(rs)
		if segStart >= 0 && slices.Equal(merged, prev) {
			continue // same addresses as the segment before: extend it
		}
		if segStart >= 0 {
			flush(lo - 1)
		}
		prev, segStart = merged, lo
		if len(merged) == 0 {
			segStart = -1
		}
	}
	if segStart >= 0 {
		flush(cuts[len(cuts)-1] - 1)
	}
	return out
}

// mergeRanges sorts address ranges and merges overlapping ones, leaving
// rs as it was.
func mergeRanges(rs []elem) []elem {
	return mergeInPlace(slices.Clone(rs))
}

// mergeInPlace sorts address ranges and merges overlapping ones in rs's
// own storage.
func mergeInPlace(rs []elem) []elem {
	sortElems(rs)
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].to.fam == r.from.fam && r.from.compare(out[n-1].to) <= 0 {
			if r.to.compare(out[n-1].to) > 0 {
				out[n-1].to = r.to
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// mRun: ip saddr|daddr . meta l4proto . th dport @set — the lookup of a
// compiled run; the address is the peer's, the port always the
// destination port.
type mRun struct {
	Fam     int
	PeerDst bool
	Set     string
}

func (m mRun) text() string {
	return famKW(m.Fam) + " " + sd(m.PeerDst) + "addr . meta l4proto . th dport @" + m.Set
}

// runState is one compiled run the desired table holds.
type runState struct {
	inbound bool
	pols    []hoststate.PolicyID
	users   map[string]bool // endpoint keys whose chains test it
	// contrib holds each policy's share of the sets; termRef how many
	// policies hold each term, termSets the sets of the live terms by
	// protocol and port, and ownRef how many policies hold each element
	// of their own (per family), so that a policy or IP set change
	// recomputes and rewrites only its own share, and an IP set's member
	// changes go straight to the elements of its terms. An exact element
	// is in the run's set while a policy holds it or a live term's set
	// holds its address: elements are not counted one by one, which at
	// 200,000 elements would be another map as big as the set.
	contrib  map[string]*contribution
	termRef  [2]map[exactTerm]int
	termSets [2]map[protoPort]map[string]struct{}
	ownRef   [2]map[elem]int
	setIDs   []string // union of the contributions' IP sets, sorted
}

// protoPort is the protocol and port of an exact element.
type protoPort struct {
	proto uint8
	port  uint16
}

// runBook is the Dataplane's bookkeeping of compiled runs.
type runBook struct {
	runs      map[string]*runState
	ofPolicy  map[string]map[string]bool // policy key → run keys
	ofSet     map[string]map[string]bool // IP set ID → run keys
	epRuns    map[string][]string        // endpoint key → run keys
	shapes    map[string][2]policyShape  // policy key → [outbound, inbound] shape
	dirty     map[string]map[string]bool // run key → policy keys to recompute (nil: all)
	rendering []string                   // runs used by the endpoint being rendered
}

func newRunBook() runBook {
	return runBook{runs: map[string]*runState{}, ofPolicy: map[string]map[string]bool{}, ofSet: map[string]map[string]bool{},
		epRuns: map[string][]string{}, shapes: map[string][2]policyShape{}, dirty: map[string]map[string]bool{}}
}

func addIdx(idx map[string]map[string]bool, k, v string) {
	if idx[k] == nil {
		idx[k] = map[string]bool{}
	}
	idx[k][v] = true
}

func delIdx(idx map[string]map[string]bool, k, v string) {
	delete(idx[k], v)
	if len(idx[k]) == 0 {
		delete(idx, k)
	}
}

// shape returns a policy direction's shape; unknown policies never compile.
func (d *Dataplane) shape(id hoststate.PolicyID, inbound bool) policyShape {
	s, ok := d.rb.shapes[policyKey(id)]
	if !ok {
		return policyShape{}
	}
	if inbound {
		return s[1]
	}
	return s[0]
}

// updateShape records a rendered policy's shape and reports whether it
// changed (its endpoints then render their tiers again).
func (d *Dataplane) updateShape(k string, p hoststate.Policy, ok bool) bool {
	old, had := d.rb.shapes[k]
	if !ok {
		delete(d.rb.shapes, k)
		return had
	}
	s := [2]policyShape{shapeOf(p.OutboundRules, false), shapeOf(p.InboundRules, true)}
	d.rb.shapes[k] = s
	return !had || s != old
}

// useRun is compiler.run for the endpoint being rendered.
func (d *Dataplane) useRun(inbound bool, pols []hoststate.PolicyID) string {
	key := runKey(inbound, pols)
	if d.rb.runs[key] == nil {
		rs := &runState{inbound: inbound, pols: slices.Clone(pols), users: map[string]bool{}}
		d.rb.runs[key] = rs
		for _, p := range pols {
			addIdx(d.rb.ofPolicy, policyKey(p), key)
		}
		d.rb.dirty[key] = nil // all of it
	}
	d.rb.rendering = append(d.rb.rendering, key)
	return key
}

func (d *Dataplane) compiler() *compiler { return &compiler{shape: d.shape, run: d.useRun} }

// setEPRuns replaces the runs an endpoint uses with those collected while
// rendering it; runs nobody uses any more go, with their sets.
func (d *Dataplane) setEPRuns(key string) {
	used := d.rb.rendering
	d.rb.rendering = nil
	for _, r := range used {
		d.rb.runs[r].users[key] = true
	}
	for _, r := range d.rb.epRuns[key] {
		if slices.Contains(used, r) {
			continue
		}
		rs := d.rb.runs[r]
		if rs == nil {
			continue
		}
		delete(rs.users, key)
		if len(rs.users) == 0 {
			d.dropRun(r)
		}
	}
	if len(used) == 0 {
		delete(d.rb.epRuns, key)
	} else {
		d.rb.epRuns[key] = used
	}
}

func (d *Dataplane) dropRun(key string) {
	rs := d.rb.runs[key]
	for _, p := range rs.pols {
		delIdx(d.rb.ofPolicy, policyKey(p), key)
	}
	for _, id := range rs.setIDs {
		delIdx(d.rb.ofSet, id, key)
	}
	delete(d.rb.runs, key)
	delete(d.rb.dirty, key)
	for _, fam := range []int{v4, v6} {
		d.dropSet(runSetName(key, fam, true))
		d.dropSet(runSetName(key, fam, false))
	}
}

// markRunPolicy marks one policy of a run for recomputation.
func (d *Dataplane) markRunPolicy(run, pkey string) {
	ps, ok := d.rb.dirty[run]
	if ok && ps == nil {
		return // already all of it
	}
	if ps == nil {
		ps = map[string]bool{}
		d.rb.dirty[run] = ps
	}
	ps[pkey] = true
}

// markRunsOfSet marks the policies of every run whose share copied IP
// set id's members (ranges, port ranges, a set not known yet); terms
// follow members by themselves (runMembersChanged).
func (d *Dataplane) markRunsOfSet(id string) {
	for r := range d.rb.ofSet[id] {
		for pk, c := range d.rb.runs[r].contrib {
			if slices.Contains(c.copied, id) {
				d.markRunPolicy(r, pk)
			}
		}
	}
}

// runMembersChanged applies an IP set's member changes to the exact
// elements of the terms that follow it, as the set's members change, so
// that a term's elements are always those of the set's current members.
// A member that is a range cannot be a term's element: the policies with
// terms on the set are recomputed, and copy the set instead.
func (d *Dataplane) runMembersChanged(id string, added, removed []hoststate.IPSetMember) {
	for r := range d.rb.ofSet[id] {
		rs := d.rb.runs[r]
		if rs == nil || rs.contrib == nil {
			continue
		}
		ranged := false
		for fi, fam := range []int{v4, v6} {
			name := runSetName(r, fam, true)
			for t, n := range rs.termRef[fi] {
				if t.set != id || n <= 0 {
					continue
				}
				for _, m := range removed {
					if m.Prefix.IsValid() && famOf(m.Prefix) == fam && m.Prefix.IsSingleIP() {
						d.dropRunElem(rs, name, fi, elem{from: pack(m.Prefix.Addr()), Proto: t.proto, Port: t.port})
					}
				}
				for _, m := range added {
					if !m.Prefix.IsValid() || famOf(m.Prefix) != fam {
						continue
					}
					if !m.Prefix.IsSingleIP() {
						ranged = true
						continue
					}
					d.addRunElem(name, elem{from: pack(m.Prefix.Addr()), Proto: t.proto, Port: t.port})
				}
			}
		}
		if ranged {
			for pk, c := range rs.contrib {
				if slices.ContainsFunc(c.terms[0], func(t exactTerm) bool { return t.set == id }) ||
					slices.ContainsFunc(c.terms[1], func(t exactTerm) bool { return t.set == id }) {
					d.markRunPolicy(r, pk)
				}
			}
		}
	}
}

// addRunElem puts an exact element in a run's set.
func (d *Dataplane) addRunElem(name string, e elem) {
	if _, ok := d.sets[name].Elems[e]; !ok {
		d.elemsToChange(name)[e] = struct{}{}
		d.dirtySets[name] = true
	}
}

// dropRunElem takes an exact element out of a run's set unless something
// else still holds it: a policy's own element, or a live term whose set
// has its address (the caller has already updated what it changed).
func (d *Dataplane) dropRunElem(rs *runState, name string, fi int, e elem) {
	if rs.ownRef[fi][e] > 0 {
		return
	}
	m := hoststate.IPSetMember{Prefix: netip.PrefixFrom(e.From(), e.From().BitLen())}
	for id := range rs.termSets[fi][protoPort{e.Proto, e.Port}] {
		if st := d.ipsets[id]; st != nil {
			if st.has(m) {
				return
			}
		}
	}
	if _, ok := d.sets[name].Elems[e]; ok {
		delete(d.elemsToChange(name), e)
		d.dirtySets[name] = true
	}
}

// refOwn counts one more or one less policy holding an element of its
// own.
func (d *Dataplane) refOwn(rs *runState, name string, fi int, e elem, delta int) {
	n := rs.ownRef[fi][e] + delta
	if n > 0 {
		rs.ownRef[fi][e] = n
	} else {
		delete(rs.ownRef[fi], e)
	}
	if delta > 0 {
		d.addRunElem(name, e)
	} else if n <= 0 {
		d.dropRunElem(rs, name, fi, e)
	}
}

// refTerm counts one more or one less policy holding a term; its elements
// come with its first holder and go with its last.
func (d *Dataplane) refTerm(rs *runState, name string, fi int, t exactTerm, delta int) {
	n := rs.termRef[fi][t] + delta
	if n > 0 {
		rs.termRef[fi][t] = n
	} else {
		delete(rs.termRef[fi], t)
	}
	if (delta > 0 && n != delta) || (delta < 0 && n > 0) {
		return // held before and after
	}
	addOrDelSet(rs.termSets[fi], protoPort{t.proto, t.port}, t.set, delta > 0)
	st := d.ipsets[t.set]
	if st == nil {
		return
	}
	fam := v4
	if fi == 1 {
		fam = v6
	}
	for m := range st.all() {
		if !m.Prefix.IsValid() || famOf(m.Prefix) != fam || !m.Prefix.IsSingleIP() {
			continue
		}
		e := elem{from: pack(m.Prefix.Addr()), Proto: t.proto, Port: t.port}
		if delta > 0 {
			d.addRunElem(name, e)
		} else {
			d.dropRunElem(rs, name, fi, e)
		}
	}
}

func addOrDelSet(idx map[protoPort]map[string]struct{}, k protoPort, v string, add bool) {
	if add {
		if idx[k] == nil {
			idx[k] = map[string]struct{}{}
		}
		idx[k][v] = struct{}{}
		return
	}
	delete(idx[k], v)
	if len(idx[k]) == 0 {
		delete(idx, k)
	}
}

// renderRuns brings the sets of every dirty run up to date: the exact
// sets by reference counts, element by element; the interval sets (rare,
// small) from all boxes again.
func (d *Dataplane) renderRuns() {
	sets := func(id string) *ipsetState { return d.ipsets[id] }
	for key, only := range d.rb.dirty {
		rs := d.rb.runs[key]
		if rs == nil {
			continue
		}
		names := [2]string{runSetName(key, v4, true), runSetName(key, v6, true)}
		if only == nil || rs.contrib == nil {
			// From scratch: new sets, all policies.
			rs.contrib = map[string]*contribution{}
			rs.termRef = [2]map[exactTerm]int{{}, {}}
			rs.termSets = [2]map[protoPort]map[string]struct{}{{}, {}}
			rs.ownRef = [2]map[elem]int{{}, {}}
			pols := make([]string, len(rs.pols))
			for i, p := range rs.pols {
				pols[i] = p.Name
			}
			comment := "run " + strings.Join(pols, ",")
			for fi, kind := range []setKind{kindAddrPort4, kindAddrPort6} {
				d.putSet(&set{Name: names[fi], Kind: kind, Comment: comment, Elems: map[elem]struct{}{}})
			}
			for _, rk := range []setKind{kindRun4, kindRun6} {
				fam := v4
				if rk == kindRun6 {
					fam = v6
				}
				d.putSet(&set{Name: runSetName(key, fam, false), Kind: rk, Comment: comment, Elems: map[elem]struct{}{}})
			}
			only = map[string]bool{}
			for _, p := range rs.pols {
				only[policyKey(p)] = true
			}
		}
		for pk := range only {
			pol := d.policies[pk]
			rules := pol.OutboundRules
			if rs.inbound {
				rules = pol.InboundRules
			}
			c := contribute(rules, rs.inbound, sets)
			old := rs.contrib[pk]
			rs.contrib[pk] = c
			// The new share first, then the old one out: what both hold
			// never leaves the set.
			for fi := range 2 {
				for _, t := range c.terms[fi] {
					d.refTerm(rs, names[fi], fi, t, +1)
				}
				for _, e := range c.exact[fi] {
					d.refOwn(rs, names[fi], fi, e, +1)
				}
			}
			if old != nil {
				for fi := range 2 {
					for _, t := range old.terms[fi] {
						d.refTerm(rs, names[fi], fi, t, -1)
					}
					for _, e := range old.exact[fi] {
						d.refOwn(rs, names[fi], fi, e, -1)
					}
				}
			}
		}
		// The IP sets the run depends on: the union of its policies'.
		var ids []string
		for _, c := range rs.contrib {
			ids = append(ids, c.setIDs...)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for _, id := range rs.setIDs {
			if _, ok := slices.BinarySearch(ids, id); !ok {
				delIdx(d.rb.ofSet, id, key)
			}
		}
		for _, id := range ids {
			addIdx(d.rb.ofSet, id, key)
		}
		rs.setIDs = ids
		// Re-adding an element deleted above leaves the set as it was;
		// the planner diffs against the kernel and sends nothing then.
		for fi, fam := range []int{v4, v6} {
			old := d.sets[runSetName(key, fam, false)]
			d.putSet(&set{Name: old.Name, Kind: old.Kind, Comment: old.Comment, Elems: rangeElems(rs.contrib, fi)})
		}
	}
	clear(d.rb.dirty)
}

func allSingle(ps []netip.Prefix) bool {
	for _, p := range ps {
		if !p.IsSingleIP() {
			return false
		}
	}
	return true
}
