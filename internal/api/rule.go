package api

import (
	"fmt"
	"strings"
)

// Action is what a rule does with a packet it matches.
type Action string

// The rule actions. Allow and Deny end evaluation; Pass skips to the next
// tier (or to the profiles); Log logs the packet and carries on.
const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Log   Action = "Log"
	Pass  Action = "Pass"
)

// PolicyType says which direction of traffic a policy applies to.
type PolicyType string

// The policy types.
const (
	PolicyTypeIngress PolicyType = "Ingress"
	PolicyTypeEgress  PolicyType = "Egress"
)

// Rule is one match-and-act step of a policy or profile. Every criterion
// set must match (AND); each positive criterion has a negated "not" form.
// A rule with no criteria matches every packet.
type Rule struct {
	Action Action `json:"action"`
	// IPVersion (4 or 6) restricts the rule to one IP family.
	IPVersion *int `json:"ipVersion,omitempty"`
	// Protocol restricts the rule to one IP protocol; it is required for
	// ports (TCP, UDP or SCTP) and ICMP matches (ICMP or ICMPv6).
	Protocol    *Protocol   `json:"protocol,omitempty"`
	ICMP        *ICMPFields `json:"icmp,omitempty"`
	NotProtocol *Protocol   `json:"notProtocol,omitempty"`
	NotICMP     *ICMPFields `json:"notICMP,omitempty"`
	Source      EntityRule  `json:"source,omitzero"`
	Destination EntityRule  `json:"destination,omitzero"`
	// HTTP matches application-layer attributes; only on Allow rules.
	HTTP     *HTTPMatch    `json:"http,omitempty"`
	Metadata *RuleMetadata `json:"metadata,omitempty"`
}

// ICMPFields matches an ICMP type and, optionally, a code of that type.
type ICMPFields struct {
	Type *int `json:"type,omitempty"` // 0-254
	Code *int `json:"code,omitempty"` // 0-255; needs Type
}

// EntityRule matches the source or the destination of a packet.
type EntityRule struct {
	// Nets are CIDRs the address must be in (any of them).
	Nets []string `json:"nets,omitempty"`
	// Selector picks endpoints and network sets by label.
	Selector string `json:"selector,omitempty"`
	// NamespaceSelector picks namespaces; global() means non-namespaced
	// resources (global network sets, host endpoints).
	NamespaceSelector string `json:"namespaceSelector,omitempty"`
	// Services matches the endpoints of a Kubernetes service.
	Services *ServiceMatch `json:"services,omitempty"`
	// Ports are ports, ranges or named ports; they need a protocol with
	// ports on the rule.
	Ports           []Port               `json:"ports,omitempty"`
	NotNets         []string             `json:"notNets,omitempty"`
	NotSelector     string               `json:"notSelector,omitempty"`
	NotPorts        []Port               `json:"notPorts,omitempty"`
	ServiceAccounts *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
}

// IsZero reports whether the entity rule matches everything; it lets
// "source: {}" be left out when printing.
func (e EntityRule) IsZero() bool {
	return len(e.Nets) == 0 && e.Selector == "" && e.NamespaceSelector == "" && e.Services == nil &&
		len(e.Ports) == 0 && len(e.NotNets) == 0 && e.NotSelector == "" && len(e.NotPorts) == 0 &&
		e.ServiceAccounts == nil
}

// ServiceMatch names a Kubernetes service.
type ServiceMatch struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// ServiceAccountMatch matches pods by their service account, by name and/or
// by the account's labels (both must match when both are given).
type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// HTTPMatch matches HTTP requests by method and path (OR within each list,
// AND between them).
type HTTPMatch struct {
	Methods []string   `json:"methods,omitempty"`
	Paths   []HTTPPath `json:"paths,omitempty"`
}

// HTTPPath matches a request path exactly or by prefix; set exactly one.
type HTTPPath struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// RuleMetadata carries annotations about a rule; it has no effect.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// validateRules checks a list of rules; direction is PolicyTypeIngress or
// PolicyTypeEgress and decides where service matches may appear.
func validateRules(errs *ErrorList, p Path, rules []Rule, direction PolicyType, inPolicy bool) {
	for i := range rules {
		validateRule(errs, p.Index(i), &rules[i], direction, inPolicy)
	}
}

func validateRule(errs *ErrorList, p Path, r *Rule, direction PolicyType, inPolicy bool) {
	switch r.Action {
	case Allow, Deny, Log, Pass:
	case "":
		errs.Required(p.Child("action"))
	default:
		errs.Invalid(p.Child("action"), string(r.Action), "is not a valid action (Allow, Deny, Log, Pass)")
	}
	if r.IPVersion != nil && *r.IPVersion != 4 && *r.IPVersion != 6 {
		errs.Invalid(p.Child("ipVersion"), *r.IPVersion, "is not a valid IP version (4 or 6)")
	}
	if r.Protocol != nil {
		validateProtocol(errs, p.Child("protocol"), *r.Protocol)
	}
	if r.NotProtocol != nil {
		validateProtocol(errs, p.Child("notProtocol"), *r.NotProtocol)
	}

	// Ports only exist for some protocols.
	portsOK := r.Protocol != nil && r.Protocol.SupportsPorts()
	for _, side := range []struct {
		name string
		e    *EntityRule
	}{{"source", &r.Source}, {"destination", &r.Destination}} {
		sp := p.Child(side.name)
		if !portsOK {
			msg := "need the rule's protocol to be TCP, UDP or SCTP"
			if len(side.e.Ports) > 0 {
				errs.Add(sp.Child("ports"), "%s", msg)
			}
			if len(side.e.NotPorts) > 0 {
				errs.Add(sp.Child("notPorts"), "%s", msg)
			}
		}
		validateEntityRule(errs, sp, side.e)
	}

	// ICMP matches.
	isICMP := r.Protocol != nil && (r.Protocol.Is(ProtoICMP) || r.Protocol.Is(ProtoICMPv6))
	if r.ICMP != nil {
		if !isICMP {
			errs.Add(p.Child("icmp"), "needs the rule's protocol to be ICMP or ICMPv6")
		}
		validateICMP(errs, p.Child("icmp"), r.ICMP)
	}
	if r.NotICMP != nil {
		validateICMP(errs, p.Child("notICMP"), r.NotICMP)
	}
	if r.IPVersion != nil {
		for _, pr := range []struct {
			field string
			proto *Protocol
		}{{"protocol", r.Protocol}, {"notProtocol", r.NotProtocol}} {
			if pr.proto == nil {
				continue
			}
			if pr.proto.Is(ProtoICMP) && *r.IPVersion != 4 {
				errs.Invalid(p.Child("ipVersion"), *r.IPVersion, fmt.Sprintf("does not match %s %s (ICMP is IPv4; set ipVersion 4)", pr.field, pr.proto))
			}
			if pr.proto.Is(ProtoICMPv6) && *r.IPVersion != 6 {
				errs.Invalid(p.Child("ipVersion"), *r.IPVersion, fmt.Sprintf("does not match %s %s (ICMPv6 is IPv6; set ipVersion 6)", pr.field, pr.proto))
			}
		}
	}

	// Networks: each valid, all of one family, and of the rule's ipVersion.
	seen := map[int]Path{}
	for _, f := range []struct {
		path Path
		nets []string
	}{
		{p.Child("source").Child("nets"), r.Source.Nets},
		{p.Child("source").Child("notNets"), r.Source.NotNets},
		{p.Child("destination").Child("nets"), r.Destination.Nets},
		{p.Child("destination").Child("notNets"), r.Destination.NotNets},
	} {
		for i, n := range f.nets {
			v := checkNet(errs, f.path.Index(i), n)
			if v == 0 {
				continue
			}
			if r.IPVersion != nil && (*r.IPVersion == 4 || *r.IPVersion == 6) && v != *r.IPVersion {
				errs.Invalid(f.path.Index(i), n, fmt.Sprintf("is an IPv%d network but the rule's ipVersion is %d", v, *r.IPVersion))
				continue
			}
			other := 10 - v // 4 <-> 6
			if first, mixed := seen[other]; mixed {
				errs.Invalid(f.path.Index(i), n, fmt.Sprintf("is an IPv%d network but %s is IPv%d: a rule must not mix IP versions", v, first, other))
				continue
			}
			if _, ok := seen[v]; !ok {
				seen[v] = f.path.Index(i)
			}
		}
	}

	if r.HTTP != nil {
		hp := p.Child("http")
		if r.Protocol != nil && !r.Protocol.Is(ProtoTCP) {
			errs.Invalid(p.Child("protocol"), r.Protocol.String(), "must be TCP (or unset) in a rule with an http match")
		}
		if r.Action != Allow && r.Action != "" {
			errs.Add(hp, "is only valid in Allow rules")
		}
		if inPolicy && direction == PolicyTypeEgress {
			errs.Add(hp, "is not allowed in egress rules")
		}
		seenMethod := map[string]bool{}
		for i, m := range r.HTTP.Methods {
			if seenMethod[m] {
				errs.Invalid(hp.Child("methods").Index(i), m, "is listed twice")
			}
			seenMethod[m] = true
		}
		for i, hpath := range r.HTTP.Paths {
			pp := hp.Child("paths").Index(i)
			v := hpath.Exact
			switch {
			case hpath.Exact != "" && hpath.Prefix != "":
				errs.Add(pp, "must set only one of exact and prefix")
				continue
			case hpath.Exact == "" && hpath.Prefix == "":
				errs.Add(pp, "must set exact or prefix")
				continue
			case v == "":
				v = hpath.Prefix
			}
			field := "exact"
			if hpath.Exact == "" {
				field = "prefix"
			}
			if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "? #") {
				errs.Invalid(pp.Child(field), v, "is not a valid HTTP path (it must start with '/' and contain no '?', '#' or space)")
			}
		}
	}

	// Service matches: with endpoint ports, in the right direction.
	if r.Destination.Services != nil {
		if len(r.Destination.Ports) > 0 {
			errs.Add(p.Child("destination").Child("ports"), "must not be set with destination.services (the service's own ports are used)")
		}
		if len(r.Destination.NotPorts) > 0 {
			errs.Add(p.Child("destination").Child("notPorts"), "must not be set with destination.services (the service's own ports are used)")
		}
	}
	if inPolicy {
		if direction == PolicyTypeEgress && r.Source.Services != nil {
			errs.Add(p.Child("source").Child("services"), "is not allowed in an egress rule's source")
		}
		if direction == PolicyTypeIngress && r.Destination.Services != nil {
			errs.Add(p.Child("destination").Child("services"), "is not allowed in an ingress rule's destination")
		}
	}

	if r.Metadata != nil {
		checkAnnotations(errs, p.Child("metadata").Child("annotations"), r.Metadata.Annotations)
	}
}

func validateICMP(errs *ErrorList, p Path, f *ICMPFields) {
	if f.Type != nil && (*f.Type < 0 || *f.Type > 254) {
		errs.Invalid(p.Child("type"), *f.Type, "is not a valid ICMP type (0-254)")
	}
	if f.Code != nil {
		if *f.Code < 0 || *f.Code > 255 {
			errs.Invalid(p.Child("code"), *f.Code, "is not a valid ICMP code (0-255)")
		}
		if f.Type == nil {
			errs.Add(p.Child("code"), "needs type to be set too")
		}
	}
}

func validateEntityRule(errs *ErrorList, p Path, e *EntityRule) {
	checkSelector(errs, p.Child("selector"), e.Selector)
	checkNoGlobal(errs, p.Child("selector"), e.Selector)
	checkSelector(errs, p.Child("notSelector"), e.NotSelector)
	checkSelector(errs, p.Child("namespaceSelector"), e.NamespaceSelector)
	if ns := strings.TrimSpace(e.NamespaceSelector); strings.Contains(ns, "global(") && ns != "global()" {
		errs.Invalid(p.Child("namespaceSelector"), e.NamespaceSelector, "must not combine global() with anything else")
	}
	for i, port := range e.Ports {
		validatePort(errs, p.Child("ports").Index(i), port)
	}
	for i, port := range e.NotPorts {
		validatePort(errs, p.Child("notPorts").Index(i), port)
	}
	if sa := e.ServiceAccounts; sa != nil {
		checkSelector(errs, p.Child("serviceAccounts").Child("selector"), sa.Selector)
	}
	if s := e.Services; s != nil {
		sp := p.Child("services")
		if s.Name == "" {
			errs.Required(sp.Child("name"))
		} else {
			checkName(errs, sp.Child("name"), s.Name)
		}
		if s.Namespace != "" {
			checkName(errs, sp.Child("namespace"), s.Namespace)
		}
		conflict := func(field string) {
			errs.Add(sp, "must not be combined with %s in the same rule", field)
		}
		if e.NamespaceSelector != "" {
			conflict("namespaceSelector")
		}
		if e.Selector != "" || e.NotSelector != "" {
			conflict("selector or notSelector")
		}
		if e.ServiceAccounts != nil {
			conflict("serviceAccounts")
		}
		if len(e.Nets) > 0 || len(e.NotNets) > 0 {
			conflict("nets or notNets")
		}
	}
}

// defaultPolicyTypes infers a policy's types when none are given, as Calico
// does: egress rules alone make an Egress policy, both kinds make both, and
// anything else (ingress rules only, or no rules at all) is Ingress.
func defaultPolicyTypes(ingress, egress []Rule) []PolicyType {
	switch {
	case len(egress) == 0:
		return []PolicyType{PolicyTypeIngress}
	case len(ingress) == 0:
		return []PolicyType{PolicyTypeEgress}
	default:
		return []PolicyType{PolicyTypeIngress, PolicyTypeEgress}
	}
}

func validateTypes(errs *ErrorList, p Path, types []PolicyType) {
	seen := map[PolicyType]bool{}
	for i, t := range types {
		switch t {
		case PolicyTypeIngress, PolicyTypeEgress:
			if seen[t] {
				errs.Invalid(p.Index(i), string(t), "is listed twice")
			}
			seen[t] = true
		default:
			errs.Invalid(p.Index(i), string(t), "is not a valid policy type (Ingress, Egress)")
		}
	}
}

// PolicyPerformanceHint is a hint to the policy engine; it never changes
// what a policy enforces.
type PolicyPerformanceHint string

// PerfHintAssumeNeededOnEveryNode makes every node load the policy.
const PerfHintAssumeNeededOnEveryNode PolicyPerformanceHint = "AssumeNeededOnEveryNode"

func validateHints(errs *ErrorList, p Path, hints []PolicyPerformanceHint) {
	seen := map[PolicyPerformanceHint]bool{}
	for i, h := range hints {
		if h != PerfHintAssumeNeededOnEveryNode {
			errs.Invalid(p.Index(i), string(h), "is not a valid performance hint (AssumeNeededOnEveryNode)")
		} else if seen[h] {
			errs.Invalid(p.Index(i), string(h), "is listed twice")
		}
		seen[h] = true
	}
}
