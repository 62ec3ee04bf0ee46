package calc

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/selector"
)

// policy is a NetworkPolicy or GlobalNetworkPolicy. One value per key, kept
// across updates (like entity) so that endpoints can point at it.
type policy struct {
	key       api.Key
	id        hoststate.PolicyID
	namespace string // a NetworkPolicy's; "" for a global one
	order     float64
	ingress   bool
	egress    bool
	preDNAT   bool
	untracked bool
	forward   bool
	// sel picks the endpoints the policy applies to; nil when it does not
	// parse (the policy is then never active).
	sel   selector.Selector
	rules ruleSet

	deleted bool
	matches map[*entity]struct{} // local endpoints selected

	active     bool
	activeRefs []string // set IDs counted while active
	emitted    *hoststate.Policy
}

// tier is what the graph knows of a Tier resource.
type tier struct {
	order         *float64
	defaultAction hoststate.Action
}

func (g *Graph) tierInfo(name string) (t tier, ok bool) {
	if tr := g.tiers[name]; tr != nil {
		return *tr, true
	}
	if name == api.DefaultTierName {
		// Calico creates the default tier itself; Serval does not require
		// a Tier resource for it.
		o := float64(api.DefaultTierOrder)
		return tier{order: &o, defaultAction: hoststate.Deny}, true
	}
	return tier{}, false
}

func (g *Graph) onTier(name string, obj *api.Tier) {
	if obj == nil {
		delete(g.tiers, name)
	} else {
		t := &tier{order: obj.Spec.Order, defaultAction: hoststate.Deny}
		if t.order == nil && name == api.DefaultTierName {
			o := float64(api.DefaultTierOrder)
			t.order = &o
		}
		if obj.Spec.DefaultAction != nil && *obj.Spec.DefaultAction == api.Pass {
			t.defaultAction = hoststate.Pass
		}
		g.tiers[name] = t
	}
	// Tiers are few and change rarely: re-check every policy of the tier
	// and re-render every local endpoint.
	for _, p := range g.policies {
		if p.id.Tier == name {
			g.checkPolicies[p] = struct{}{}
		}
	}
	for k := range g.local {
		g.dirtyLocal[k] = struct{}{}
	}
}

// onPolicy applies an added, modified or deleted policy.
func (g *Graph) onPolicy(key api.Key, obj api.Resource) {
	p := g.policies[key]
	if p == nil {
		if obj == nil {
			return
		}
		p = &policy{key: key, matches: map[*entity]struct{}{}}
		g.policies[key] = p
	}
	g.reselect[p] = struct{}{}
	g.checkPolicies[p] = struct{}{}
	for e := range p.matches {
		g.dirtyLocal[e.key] = struct{}{}
	}
	if obj == nil {
		p.deleted, p.sel = true, nil
		return
	}
	p.deleted = false

	var (
		tierName, sel, nsSel, saSel string
		order                       *float64
		types                       []api.PolicyType
		ingress, egress             []api.Rule
	)
	switch o := obj.(type) {
	case *api.NetworkPolicy:
		s := &o.Spec
		tierName, sel, saSel, order, types, ingress, egress = s.Tier, s.Selector, s.ServiceAccountSelector, s.Order, s.Types, s.Ingress, s.Egress
		p.namespace = o.Namespace
		p.preDNAT, p.untracked, p.forward = false, false, false
		p.id = hoststate.PolicyID{Kind: "NetworkPolicy", Name: o.Namespace + "/" + o.Name}
	case *api.GlobalNetworkPolicy:
		s := &o.Spec
		tierName, sel, nsSel, saSel, order, types, ingress, egress = s.Tier, s.Selector, s.NamespaceSelector, s.ServiceAccountSelector, s.Order, s.Types, s.Ingress, s.Egress
		p.namespace = ""
		p.preDNAT, p.untracked, p.forward = s.PreDNAT, s.DoNotTrack, s.ApplyOnForward
		p.id = hoststate.PolicyID{Kind: "GlobalNetworkPolicy", Name: o.Name}
	}
	if tierName == "" {
		tierName = api.DefaultTierName
	}
	p.id.Tier = tierName
	p.order = math.Inf(1)
	if order != nil {
		p.order = *order
	}
	if len(types) == 0 {
		// What api.SetDefaults infers, for objects stored without defaults.
		switch {
		case len(egress) == 0:
			types = []api.PolicyType{api.PolicyTypeIngress}
		case len(ingress) == 0:
			types = []api.PolicyType{api.PolicyTypeEgress}
		default:
			types = []api.PolicyType{api.PolicyTypeIngress, api.PolicyTypeEgress}
		}
	}
	p.ingress = slices.Contains(types, api.PolicyTypeIngress)
	p.egress = slices.Contains(types, api.PolicyTypeEgress)
	p.sel = g.policySelector(key, sel, nsSel, saSel)

	owner := p.id.Kind + ":" + p.id.Name
	p.rules = ruleSet{sets: map[string]setSpec{}}
	if p.ingress {
		p.rules.inbound = g.convertRules(owner, p.namespace, "ingress", ingress, &p.rules)
	}
	if p.egress {
		p.rules.outbound = g.convertRules(owner, p.namespace, "egress", egress, &p.rules)
	}
}

// policySelector builds the selector of the endpoints a policy applies to:
// its selector, narrowed by its namespaceSelector and
// serviceAccountSelector as Calico does. The namespace of a NetworkPolicy
// is checked apart (see applies).
func (g *Graph) policySelector(key api.Key, sel, nsSel, saSel string) selector.Selector {
	parts := []string{}
	for _, f := range []struct {
		text, prefix string
		ns           bool
	}{{sel, "", false}, {nsSel, namespaceLabelPrefix, true}, {saSel, serviceAccountLabelPrefix, false}} {
		if f.text == "" && f.prefix != "" {
			continue
		}
		s, err := selector.Parse(f.text)
		if err != nil {
			g.log.Error("policy has a selector that does not parse; it will not be applied", "policy", key.String(), "err", err)
			return nil
		}
		c := s.String()
		if f.prefix != "" {
			c = prefixLabels(c, f.prefix, f.ns)
		}
		parts = append(parts, c)
	}
	s, err := selector.Parse("(" + strings.Join(parts, ") && (") + ")")
	if err != nil {
		g.log.Error("policy selector cannot be combined; it will not be applied", "policy", key.String(), "err", err)
		return nil
	}
	return s
}

// applies reports whether the policy selects the local endpoint.
func (p *policy) applies(e *entity) bool {
	if p.sel == nil || p.deleted {
		return false
	}
	if e.kind == kindWEP && (p.preDNAT || p.untracked) {
		return false // these only apply to host endpoints
	}
	if p.namespace != "" && (e.kind != kindWEP || e.namespace != p.namespace) {
		return false
	}
	return p.sel.EvaluateLabels(selector.MapLabels(e.labels))
}

// setMatch records whether p selects e, and marks what changes.
func (g *Graph) setMatch(p *policy, e *entity, match bool) {
	_, had := p.matches[e]
	if had == match {
		return
	}
	if match {
		p.matches[e] = struct{}{}
		e.policies[p] = struct{}{}
	} else {
		delete(p.matches, e)
		delete(e.policies, p)
	}
	g.checkPolicies[p] = struct{}{}
	g.dirtyLocal[e.key] = struct{}{}
}

func (p *policy) render() hoststate.Policy {
	return hoststate.Policy{
		ID:             p.id,
		InboundRules:   p.rules.inbound,
		OutboundRules:  p.rules.outbound,
		Untracked:      p.untracked,
		PreDNAT:        p.preDNAT,
		ApplyOnForward: p.forward,
	}
}

// tiersFor orders the policies by tier (order, then name; an unset order
// last) and by order then name inside a tier, and groups them.
func (g *Graph) tiersFor(pols []*policy) []hoststate.TierPolicies {
	if len(pols) == 0 {
		return nil
	}
	type entry struct {
		p *policy
		t tier
	}
	es := make([]entry, 0, len(pols))
	for _, p := range pols {
		t, _ := g.tierInfo(p.id.Tier)
		es = append(es, entry{p, t})
	}
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.p.id.Tier != b.p.id.Tier {
			switch {
			case a.t.order == nil && b.t.order != nil:
				return false
			case a.t.order != nil && b.t.order == nil:
				return true
			case a.t.order != nil && *a.t.order != *b.t.order:
				return *a.t.order < *b.t.order
			}
			return a.p.id.Tier < b.p.id.Tier
		}
		if a.p.order != b.p.order {
			return a.p.order < b.p.order
		}
		if a.p.id.Name != b.p.id.Name {
			return a.p.id.Name < b.p.id.Name
		}
		return a.p.id.Kind < b.p.id.Kind
	})
	var out []hoststate.TierPolicies
	for i, e := range es {
		if len(out) == 0 || out[len(out)-1].Name != e.p.id.Tier {
			// Sized exactly: 250 local endpoints with 200 policies each
			// kept as much again in append's spare capacity.
			in, eg := 0, 0
			for _, f := range es[i:] {
				if f.p.id.Tier != e.p.id.Tier {
					break
				}
				if f.p.ingress {
					in++
				}
				if f.p.egress {
					eg++
				}
			}
			tp := hoststate.TierPolicies{Name: e.p.id.Tier, DefaultAction: e.t.defaultAction}
			if in > 0 {
				tp.IngressPolicies = make([]hoststate.PolicyID, 0, in)
			}
			if eg > 0 {
				tp.EgressPolicies = make([]hoststate.PolicyID, 0, eg)
			}
			out = append(out, tp)
		}
		tp := &out[len(out)-1]
		if e.p.ingress {
			tp.IngressPolicies = append(tp.IngressPolicies, e.p.id)
		}
		if e.p.egress {
			tp.EgressPolicies = append(tp.EgressPolicies, e.p.id)
		}
	}
	return out
}

// profile is a Profile resource, or a name a local endpoint refers to.
type profile struct {
	name      string
	exists    bool
	labels    map[string]string
	rules     ruleSet
	localRefs int // local endpoints listing it

	active     bool
	activeRefs []string
	emitted    *hoststate.Profile
}

func (g *Graph) profileFor(name string) *profile {
	p := g.profiles[name]
	if p == nil {
		p = &profile{name: name, rules: ruleSet{sets: map[string]setSpec{}}}
		g.profiles[name] = p
	}
	return p
}

func (g *Graph) onProfile(name string, obj *api.Profile) {
	p := g.profileFor(name)
	oldLabels := p.labels
	if obj == nil {
		p.exists, p.labels = false, nil
		p.rules = ruleSet{sets: map[string]setSpec{}}
	} else {
		p.exists, p.labels = true, obj.Spec.LabelsToApply
		p.rules = ruleSet{sets: map[string]setSpec{}}
		owner := "Profile:" + name
		p.rules.inbound = g.convertRules(owner, "", "ingress", obj.Spec.Ingress, &p.rules)
		p.rules.outbound = g.convertRules(owner, "", "egress", obj.Spec.Egress, &p.rules)
	}
	g.checkProfiles[p] = struct{}{}
	if !mapsEqual(oldLabels, p.labels) {
		g.relabel(name)
	}
	g.gcProfile(p)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// gcProfile forgets a profile nobody needs any more.
func (g *Graph) gcProfile(p *profile) {
	if !p.exists && p.localRefs == 0 && !p.active && p.emitted == nil {
		delete(g.profiles, p.name)
		delete(g.checkProfiles, p)
	}
}

func (g *Graph) changeProfileRefs(names []string, d int) {
	for _, n := range names {
		p := g.profileFor(n)
		p.localRefs += d
		g.checkProfiles[p] = struct{}{}
	}
}

// render gives the profile's rules; a profile an endpoint names but that
// does not exist denies everything (as Felix does), so that a missing
// profile never opens an endpoint up.
func (p *profile) render() hoststate.Profile {
	if !p.exists {
		deny := []hoststate.Rule{{Action: hoststate.Deny, ID: "missing-profile"}}
		return hoststate.Profile{Name: p.name, InboundRules: deny, OutboundRules: deny}
	}
	return hoststate.Profile{Name: p.name, InboundRules: p.rules.inbound, OutboundRules: p.rules.outbound}
}
