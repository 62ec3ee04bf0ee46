package verdict

import (
	"fmt"

	"github.com/servalnet/serval/internal/hoststate"
)

// Direction is the side of the endpoint a packet crosses.
type Direction string

const (
	// Egress: the packet leaves the endpoint (from-workload chain, or a
	// host endpoint's output).
	Egress Direction = "egress"
	// Ingress: the packet arrives at the endpoint.
	Ingress Direction = "ingress"
)

// StepKind says what a Step is.
type StepKind string

const (
	StepTier     StepKind = "tier"      // a tier begins
	StepPolicy   StepKind = "policy"    // a policy of the tier is evaluated
	StepRule     StepKind = "rule"      // a rule matched (Log, Allow, Deny or Pass)
	StepNoMatch  StepKind = "no-match"  // no rule of the policy matched
	StepTierEnd  StepKind = "tier-end"  // no policy of the tier decided: its default action
	StepProfile  StepKind = "profile"   // a profile is evaluated
	StepNoPolicy StepKind = "no-policy" // nothing allowed: the chain's final drop
	StepMissing  StepKind = "missing"   // a policy or profile the host does not have is skipped
)

// Step is one step of a trace.
type Step struct {
	Kind       StepKind         `json:"kind"`
	Tier       string           `json:"tier,omitempty"`
	Policy     string           `json:"policy,omitempty"` // hoststate name: "ns/name" or "name"
	PolicyKind string           `json:"policyKind,omitempty"`
	Profile    string           `json:"profile,omitempty"`
	Rule       int              `json:"rule,omitempty"` // 1-based index in the policy's rules of this direction
	RuleID     string           `json:"ruleID,omitempty"`
	Action     hoststate.Action `json:"action,omitempty"`
	Note       string           `json:"note,omitempty"`
}

// Trace is the walk of one packet through one endpoint's chain.
type Trace struct {
	Endpoint  hoststate.EndpointID `json:"endpoint"`
	Direction Direction            `json:"direction"`
	Steps     []Step               `json:"steps"`
	// Verdict is Allow or Deny.
	Verdict hoststate.Action `json:"verdict"`
}

// Workload traces p through the chain of the local workload endpoint id
// in direction dir: egress is its from-workload chain (anti-spoofing
// first), ingress its to-workload chain.
func (h *Host) Workload(id hoststate.EndpointID, dir Direction, p Packet) (Trace, error) {
	ep, ok := h.Workloads[id]
	if !ok {
		return Trace{}, fmt.Errorf("workload endpoint %s is not local to this host", id)
	}
	t := Trace{Endpoint: id, Direction: dir}
	if dir == Egress {
		nets := ep.IPv4Nets
		if !p.is4() {
			nets = ep.IPv6Nets
		}
		if !inPrefixes(p.Src, nets) {
			t.Steps = append(t.Steps, Step{Kind: StepNoPolicy, Action: hoststate.Deny,
				Note: fmt.Sprintf("anti-spoofing: %s is not an address of the workload", p.Src)})
			t.Verdict = hoststate.Deny
			return t, nil
		}
	}
	h.walk(&t, ep.Tiers, ep.ProfileIDs, dir == Ingress, p)
	return t, nil
}

// HostEndpoint traces p through the normal (input or output) chain of the
// host endpoint id: ingress for traffic to the host, egress from it.
func (h *Host) HostEndpoint(id hoststate.EndpointID, dir Direction, p Packet) (Trace, error) {
	ep, ok := h.HostEPs[id]
	if !ok {
		return Trace{}, fmt.Errorf("host endpoint %s is not local to this host", id)
	}
	t := Trace{Endpoint: id, Direction: dir}
	h.walk(&t, ep.Tiers, ep.ProfileIDs, dir == Ingress, p)
	return t, nil
}

// walk follows renderTiers, renderProfiles and the chain's final drop.
func (h *Host) walk(t *Trace, tiers []hoststate.TierPolicies, profiles []string, inbound bool, p Packet) {
	add := func(s Step) { t.Steps = append(t.Steps, s) }
	for _, tier := range tiers {
		ids := tier.EgressPolicies
		if inbound {
			ids = tier.IngressPolicies
		}
		var known []hoststate.PolicyID
		for _, id := range ids {
			if _, ok := h.Policies[id]; ok {
				known = append(known, id)
			} else {
				add(Step{Kind: StepMissing, Tier: tier.Name, Policy: id.Name, PolicyKind: id.Kind, Note: "the host has no such policy: skipped"})
			}
		}
		if len(known) == 0 {
			continue
		}
		def := tier.DefaultAction
		if def == "" {
			def = hoststate.Deny
		}
		add(Step{Kind: StepTier, Tier: tier.Name, Action: def})
		passed := false
		for _, id := range known {
			pol := h.Policies[id]
			rules := pol.OutboundRules
			if inbound {
				rules = pol.InboundRules
			}
			add(Step{Kind: StepPolicy, Tier: tier.Name, Policy: id.Name, PolicyKind: id.Kind})
			act, i := h.rules(rules, p)
			for _, li := range i.logs {
				add(Step{Kind: StepRule, Tier: tier.Name, Policy: id.Name, PolicyKind: id.Kind, Rule: li + 1, RuleID: rules[li].ID, Action: hoststate.Log})
			}
			if act == "" {
				add(Step{Kind: StepNoMatch, Tier: tier.Name, Policy: id.Name, PolicyKind: id.Kind})
				continue
			}
			add(Step{Kind: StepRule, Tier: tier.Name, Policy: id.Name, PolicyKind: id.Kind, Rule: i.at + 1, RuleID: rules[i.at].ID, Action: act})
			switch act {
			case hoststate.Allow:
				t.Verdict = hoststate.Allow
				return
			case hoststate.Pass:
				passed = true
			default:
				t.Verdict = hoststate.Deny
				return
			}
			break
		}
		if passed {
			continue
		}
		add(Step{Kind: StepTierEnd, Tier: tier.Name, Action: def, Note: "no policy of the tier decided"})
		if def != hoststate.Pass {
			t.Verdict = hoststate.Deny
			return
		}
	}
	for _, name := range profiles {
		pr, ok := h.Profiles[name]
		if !ok {
			add(Step{Kind: StepMissing, Profile: name, Note: "the host has no such profile: skipped"})
			continue
		}
		rules := pr.OutboundRules
		if inbound {
			rules = pr.InboundRules
		}
		add(Step{Kind: StepProfile, Profile: name})
		act, i := h.rules(rules, p)
		for _, li := range i.logs {
			add(Step{Kind: StepRule, Profile: name, Rule: li + 1, RuleID: rules[li].ID, Action: hoststate.Log})
		}
		if act == "" {
			add(Step{Kind: StepNoMatch, Profile: name})
			continue
		}
		add(Step{Kind: StepRule, Profile: name, Rule: i.at + 1, RuleID: rules[i.at].ID, Action: act})
		switch act {
		case hoststate.Allow:
			t.Verdict = hoststate.Allow
			return
		case hoststate.Pass:
			// A profile's Pass returns to the endpoint chain, which goes
			// on to the next profile.
		default:
			t.Verdict = hoststate.Deny
			return
		}
	}
	add(Step{Kind: StepNoPolicy, Action: hoststate.Deny, Note: "no policy or profile allowed"})
	t.Verdict = hoststate.Deny
}

type ruleHits struct {
	at   int   // the deciding rule
	logs []int // Log rules matched before it
}

// rules returns the action of the first matching Allow, Deny or Pass rule
// ("" when none matches); an action the dataplane does not know drops.
func (h *Host) rules(rules []hoststate.Rule, p Packet) (hoststate.Action, ruleHits) {
	var hits ruleHits
	for i, r := range rules {
		if !Matches(r, p, h.Sets) {
			continue
		}
		switch r.Action {
		case hoststate.Log:
			hits.logs = append(hits.logs, i)
			continue
		case hoststate.Allow, hoststate.Pass, hoststate.Deny:
			hits.at = i
			return r.Action, hits
		default:
			hits.at = i
			return hoststate.Deny, hits
		}
	}
	return "", hits
}
