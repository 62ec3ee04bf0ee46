package api

import (
	"net/netip"
	"sort"
)

// k8sOrchestrator is the term Calico adds to every pod selector of a
// converted Kubernetes policy: it selects only Kubernetes pods.
const k8sOrchestrator = "projectcalico.org/orchestrator == 'k8s'"

// EnforcedName is the name of the Calico NetworkPolicy a Kubernetes
// NetworkPolicy of this name becomes.
func (s *StagedKubernetesNetworkPolicy) EnforcedName() string { return "knp.default." + s.Name }

// Enforced converts the staged Kubernetes policy as Calico converts a
// Kubernetes NetworkPolicy: NetworkPolicy "knp.default.<name>" in the
// default tier at order 1000, selecting the Kubernetes pods of podSelector,
// with one Allow rule per protocol of the rule's ports (by name) and per
// peer (no peers: any; no ports: any protocol; TCP when a port names
// none). Namespace selectors select namespaces by their own labels (the
// calculation graph matches them against the pcns.* labels endpoints
// inherit from kns.<namespace>). Types are those listed, or as Kubernetes
// defaults them: Ingress, and Egress when there are egress rules.
// k8sconv.NetworkPolicyToPolicy translates networking.k8s.io/v1 objects
// through it.
func (s *StagedKubernetesNetworkPolicy) Enforced() *NetworkPolicy {
	order := 1000.0
	np := &NetworkPolicy{TypeMeta: TypeMeta{Kind: "NetworkPolicy", APIVersion: APIVersion}}
	np.Name, np.Namespace, np.Labels, np.Annotations = s.EnforcedName(), s.Namespace, s.Labels, s.Annotations
	np.Spec = NetworkPolicySpec{
		Tier:     DefaultTierName,
		Order:    &order,
		Selector: podSelector(&s.Spec.PodSelector),
		Types:    k8sPolicyTypes(s.Spec.PolicyTypes, len(s.Spec.Egress) > 0),
	}
	for _, r := range s.Spec.Ingress {
		np.Spec.Ingress = append(np.Spec.Ingress, k8sRules(r.From, r.Ports, true)...)
	}
	for _, r := range s.Spec.Egress {
		np.Spec.Egress = append(np.Spec.Egress, k8sRules(r.To, r.Ports, false)...)
	}
	return np
}

// k8sPolicyTypes are the types of the converted policy: those listed,
// Ingress before Egress, each once; none listed, as Kubernetes defaults
// them: Ingress, and Egress when there are egress rules.
func k8sPolicyTypes(listed []PolicyType, hasEgress bool) []PolicyType {
	ingress, egress := len(listed) == 0, len(listed) == 0 && hasEgress
	for _, t := range listed {
		switch t {
		case PolicyTypeIngress:
			ingress = true
		case PolicyTypeEgress:
			egress = true
		}
	}
	if !ingress && !egress {
		// Only types Calico does not know: it applies the policy to
		// ingress, as when none are listed.
		ingress = true
	}
	var out []PolicyType
	if ingress {
		out = append(out, PolicyTypeIngress)
	}
	if egress {
		out = append(out, PolicyTypeEgress)
	}
	return out
}

// K8sSelector writes a Kubernetes label selector in Calico's selector
// syntax, as Calico converts one: the terms of matchLabels (sorted by key)
// and of matchExpressions joined by &&; the empty selector is all(). As a
// namespaceSelector it selects namespaces by their own labels (the
// calculation graph matches it against the pcns.* labels endpoints inherit).
func K8sSelector(s K8sLabelSelector) string { return k8sSelector(s) }

// K8sPodSelector is the selector of a Kubernetes pod selector as Calico
// converts it: the Kubernetes pods (orchestrator k8s) it selects; nil
// selects every pod.
func K8sPodSelector(s *K8sLabelSelector) string { return podSelector(s) }

func podSelector(s *K8sLabelSelector) string {
	if s == nil {
		return k8sOrchestrator
	}
	t := k8sSelector(*s)
	if t == "all()" {
		return k8sOrchestrator
	}
	return k8sOrchestrator + " && " + t
}

func k8sRules(peers []K8sNetworkPolicyPeer, ports []K8sNetworkPolicyPort, ingress bool) []Rule {
	// Ports grouped by protocol; one rule per protocol and peer, protocol
	// by protocol (by name), as Calico writes them.
	type group struct {
		proto   *Protocol
		ports   []Port
		anyPort bool // an entry without a port: the whole protocol
	}
	var groups []group
	for _, pt := range ports {
		proto := ProtocolFromString("TCP")
		if pt.Protocol != nil {
			proto = *pt.Protocol
		}
		i := 0
		for ; i < len(groups); i++ {
			if groups[i].proto.String() == proto.String() {
				break
			}
		}
		if i == len(groups) {
			groups = append(groups, group{proto: &proto})
		}
		switch {
		case pt.Port == nil:
			groups[i].anyPort = true
		case pt.Port.PortName != "":
			groups[i].ports = append(groups[i].ports, NamedPort(pt.Port.PortName))
		case pt.EndPort != nil:
			groups[i].ports = append(groups[i].ports, PortRange(pt.Port.MinPort, *pt.EndPort))
		default:
			groups[i].ports = append(groups[i].ports, SinglePort(pt.Port.MinPort))
		}
	}
	for i := range groups {
		if groups[i].anyPort {
			groups[i].ports = nil
		}
		groups[i].ports = simplifyPorts(groups[i].ports)
	}
	// Calico's order: by protocol name.
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].proto.String() < groups[j].proto.String() })
	if len(groups) == 0 {
		groups = []group{{}}
	}
	var peerRules []EntityRule
	for _, p := range peers {
		var e EntityRule
		switch {
		case p.IPBlock != nil:
			e.Nets = []string{canonicalCIDR(p.IPBlock.CIDR)}
			for _, x := range p.IPBlock.Except {
				e.NotNets = append(e.NotNets, canonicalCIDR(x))
			}
		case p.NamespaceSelector != nil:
			e.Selector = podSelector(p.PodSelector)
			e.NamespaceSelector = k8sSelector(*p.NamespaceSelector)
		default:
			e.Selector = podSelector(p.PodSelector)
		}
		peerRules = append(peerRules, e)
	}
	if len(peerRules) == 0 {
		peerRules = []EntityRule{{}}
	}
	var out []Rule
	for _, g := range groups {
		for _, peer := range peerRules {
			r := Rule{Action: Allow, Protocol: g.proto}
			dst := EntityRule{Ports: g.ports}
			if ingress {
				r.Source, r.Destination = peer, dst
			} else {
				peer.Ports = g.ports
				r.Destination = peer
			}
			out = append(out, r)
		}
	}
	return out
}

// canonicalCIDR is the network of a CIDR ("10.0.0.1/24" is 10.0.0.0/24),
// as Calico writes an ipBlock; what does not parse is kept for validation
// to report.
func canonicalCIDR(c string) string {
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return c
	}
	return p.Masked().String()
}

// simplifyPorts writes a protocol's ports as Calico does: when more than
// one numeric port is given, named ports first (as given), then the
// numeric ports and ranges merged into the fewest ranges, in order
// ([80, 81, 82, 9090, "foo"] is ["foo", "80:82", 9090]).
func simplifyPorts(ports []Port) []Port {
	if len(ports) <= 1 {
		return ports
	}
	var named []Port
	type span struct{ lo, hi int }
	var spans []span
	count := 0
	for _, p := range ports {
		if p.PortName != "" {
			named = append(named, p)
			continue
		}
		spans = append(spans, span{p.MinPort, p.MaxPort})
		count += p.MaxPort - p.MinPort + 1
	}
	if count <= 1 {
		return ports
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	out := named
	cur := spans[0]
	flush := func() {
		if cur.lo == cur.hi {
			out = append(out, SinglePort(cur.lo))
		} else {
			out = append(out, PortRange(cur.lo, cur.hi))
		}
	}
	for _, sp := range spans[1:] {
		if sp.lo <= cur.hi+1 {
			cur.hi = max(cur.hi, sp.hi)
			continue
		}
		flush()
		cur = sp
	}
	flush()
	return out
}
