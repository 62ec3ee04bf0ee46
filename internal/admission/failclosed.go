package admission

import (
	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/selector"
)

// failClosed returns what stands in for an invalid policy, profile or tier,
// or nil for the kinds that are skipped instead.
//
// A policy that cannot be honoured must not be dropped: dropping it would
// let through whatever its Deny rules denied, and would take it out of its
// tier, so that a packet might reach a later Allow. Keeping its valid rules
// and leaving out the rest would be half-applying it, with the same effect
// for the rules left out. Instead it is replaced by a policy with the same
// tier, order, selectors and types whose rules are a single Deny per
// direction it covers: it still selects its endpoints at the same place in
// the tier order, so the policies before it still act first, and it
// matches nothing for its Allow rules and everything for its Deny rules.
// A selector that does not parse cannot say which endpoints the policy
// selects; it becomes all() (it could have selected any of them). A tier
// name that is not valid becomes the default tier.
func failClosed(key api.Key, obj api.Resource) api.Resource {
	deny := []api.Rule{{Action: api.Deny}}
	switch x := obj.(type) {
	case *api.GlobalNetworkPolicy:
		s := x.Spec
		sub := &api.GlobalNetworkPolicy{TypeMeta: x.TypeMeta, ObjectMeta: meta(key, x.ObjectMeta)}
		sub.Spec = api.GlobalNetworkPolicySpec{
			Tier: tierName(s.Tier), Order: s.Order, Selector: sel(s.Selector),
			NamespaceSelector: optSel(s.NamespaceSelector), ServiceAccountSelector: optSel(s.ServiceAccountSelector),
			Types: types(s.Types), DoNotTrack: s.DoNotTrack, PreDNAT: s.PreDNAT, ApplyOnForward: s.ApplyOnForward,
		}
		if sub.Spec.PreDNAT {
			sub.Spec.Types = []api.PolicyType{api.PolicyTypeIngress} // preDNAT has ingress only
		}
		sub.Spec.Ingress, sub.Spec.Egress = rulesFor(sub.Spec.Types, deny)
		return sub
	case *api.NetworkPolicy:
		s := x.Spec
		sub := &api.NetworkPolicy{TypeMeta: x.TypeMeta, ObjectMeta: meta(key, x.ObjectMeta)}
		sub.Spec = api.NetworkPolicySpec{
			Tier: tierName(s.Tier), Order: s.Order, Selector: sel(s.Selector),
			ServiceAccountSelector: optSel(s.ServiceAccountSelector), Types: types(s.Types),
		}
		sub.Spec.Ingress, sub.Spec.Egress = rulesFor(sub.Spec.Types, deny)
		return sub
	case *api.Profile:
		// A profile applies to the endpoints that name it; its labels
		// are kept only when they are valid.
		sub := &api.Profile{TypeMeta: x.TypeMeta, ObjectMeta: meta(key, x.ObjectMeta)}
		sub.Spec.Ingress, sub.Spec.Egress = deny, deny
		var errs api.ErrorList
		api.ValidateLabels(&errs, "spec.labelsToApply", x.Spec.LabelsToApply)
		if len(errs) == 0 {
			sub.Spec.LabelsToApply = x.Spec.LabelsToApply
		}
		return sub
	case *api.Tier:
		// Skipping a tier would take its policies out of force; keep it
		// at its place, with nothing passed on by default.
		d := api.Deny
		return &api.Tier{TypeMeta: x.TypeMeta, ObjectMeta: meta(key, x.ObjectMeta),
			Spec: api.TierSpec{Order: x.Spec.Order, DefaultAction: &d}}
	}
	return nil
}

// meta keeps only the identity of the object: labels and annotations do
// not change what a policy does, and may be what was invalid.
func meta(key api.Key, m api.ObjectMeta) api.ObjectMeta {
	return api.ObjectMeta{Name: key.Name, Namespace: key.Namespace, ResourceVersion: m.ResourceVersion, UID: m.UID}
}

func sel(s string) string {
	if _, err := selector.Parse(s); err != nil {
		return "all()"
	}
	return s
}

// optSel is for selectors that narrow (namespace, service account): one
// that does not parse narrows nothing.
func optSel(s string) string {
	if _, err := selector.Parse(s); err != nil {
		return ""
	}
	return s
}

func tierName(t string) string {
	if t == "" || api.CheckDNS1123Label(t) != "" {
		return api.DefaultTierName
	}
	return t
}

// types keeps the policy's directions when they are valid, else covers
// both.
func types(ts []api.PolicyType) []api.PolicyType {
	var in, out bool
	for _, t := range ts {
		switch t {
		case api.PolicyTypeIngress:
			in = true
		case api.PolicyTypeEgress:
			out = true
		default:
			return []api.PolicyType{api.PolicyTypeIngress, api.PolicyTypeEgress}
		}
	}
	switch {
	case in && out, !in && !out:
		return []api.PolicyType{api.PolicyTypeIngress, api.PolicyTypeEgress}
	case in:
		return []api.PolicyType{api.PolicyTypeIngress}
	}
	return []api.PolicyType{api.PolicyTypeEgress}
}

func rulesFor(ts []api.PolicyType, deny []api.Rule) (ingress, egress []api.Rule) {
	for _, t := range ts {
		if t == api.PolicyTypeIngress {
			ingress = deny
		} else {
			egress = deny
		}
	}
	return ingress, egress
}
