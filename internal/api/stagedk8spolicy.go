package api

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// StagedKubernetesNetworkPolicy is a Kubernetes NetworkPolicy staged for
// review (Calico's kind of that name). Promoted, it becomes the Calico
// NetworkPolicy "knp.default.<name>" in its namespace that Calico makes
// of a Kubernetes NetworkPolicy (Calico's conversion: tier default, order
// 1000, selector the podSelector of k8s endpoints, one Allow rule per
// peer and protocol); Enforced builds it.
type StagedKubernetesNetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StagedKubernetesNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedKubernetesNetworkPolicySpec is networking.k8s.io/v1
// NetworkPolicySpec and a stagedAction.
type StagedKubernetesNetworkPolicySpec struct {
	StagedAction StagedAction              `json:"stagedAction,omitempty"`
	PodSelector  K8sLabelSelector          `json:"podSelector,omitzero"`
	Ingress      []K8sNetworkPolicyIngress `json:"ingress,omitempty"`
	Egress       []K8sNetworkPolicyEgress  `json:"egress,omitempty"`
	PolicyTypes  []PolicyType              `json:"policyTypes,omitempty"`
}

// K8sLabelSelector is a Kubernetes label selector.
type K8sLabelSelector struct {
	MatchLabels      map[string]string             `json:"matchLabels,omitempty"`
	MatchExpressions []K8sLabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// K8sLabelSelectorRequirement is one term of a label selector.
type K8sLabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"` // In, NotIn, Exists, DoesNotExist
	Values   []string `json:"values,omitempty"`
}

// K8sNetworkPolicyIngress is an ingress rule.
type K8sNetworkPolicyIngress struct {
	Ports []K8sNetworkPolicyPort `json:"ports,omitempty"`
	From  []K8sNetworkPolicyPeer `json:"from,omitempty"`
}

// K8sNetworkPolicyEgress is an egress rule.
type K8sNetworkPolicyEgress struct {
	Ports []K8sNetworkPolicyPort `json:"ports,omitempty"`
	To    []K8sNetworkPolicyPeer `json:"to,omitempty"`
}

// K8sNetworkPolicyPort is a protocol (TCP when unset) and a port (a
// number or a named port), up to EndPort.
type K8sNetworkPolicyPort struct {
	Protocol *Protocol `json:"protocol,omitempty"`
	Port     *Port     `json:"port,omitempty"`
	EndPort  *int      `json:"endPort,omitempty"`
}

// K8sNetworkPolicyPeer is pods (by pod and namespace selector) or an
// address block.
type K8sNetworkPolicyPeer struct {
	PodSelector       *K8sLabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *K8sLabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *K8sIPBlock       `json:"ipBlock,omitempty"`
}

// K8sIPBlock is a CIDR without the CIDRs of Except.
type K8sIPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "StagedKubernetesNetworkPolicy",
		Plural:     "stagedkubernetesnetworkpolicies",
		ShortNames: []string{"stagedkubernetesnetworkpolicy", "sknp", "sknps"},
		Namespaced: true,
		New:        func() Resource { return &StagedKubernetesNetworkPolicy{} },
	})
}

// SetDefaults: stagedAction Set, policyTypes as Kubernetes infers them
// (Ingress, and Egress when there are egress rules), TCP for ports.
func (s *StagedKubernetesNetworkPolicy) SetDefaults() {
	if s.Spec.StagedAction == "" {
		s.Spec.StagedAction = StagedActionSet
	}
	if s.Spec.StagedAction != StagedActionSet {
		return
	}
	if len(s.Spec.PolicyTypes) == 0 {
		s.Spec.PolicyTypes = []PolicyType{PolicyTypeIngress}
		if len(s.Spec.Egress) > 0 {
			s.Spec.PolicyTypes = append(s.Spec.PolicyTypes, PolicyTypeEgress)
		}
	}
	tcp := func(ps []K8sNetworkPolicyPort) {
		for i := range ps {
			if ps[i].Protocol == nil {
				p := ProtocolFromString("TCP")
				ps[i].Protocol = &p
			}
		}
	}
	for i := range s.Spec.Ingress {
		tcp(s.Spec.Ingress[i].Ports)
	}
	for i := range s.Spec.Egress {
		tcp(s.Spec.Egress[i].Ports)
	}
}

// Validate checks the stagedAction and the Kubernetes spec.
func (s *StagedKubernetesNetworkPolicy) Validate() ErrorList {
	var errs ErrorList
	p := Path("spec")
	checkPolicyName(&errs, s.Name, networkPolicyNameRE)
	switch s.Spec.StagedAction {
	case StagedActionSet, StagedActionDelete:
	default:
		errs.Invalid(p.Child("stagedAction"), string(s.Spec.StagedAction), "is not one of Set, Delete")
		return errs
	}
	checkK8sSelector(&errs, p.Child("podSelector"), s.Spec.PodSelector)
	for i, t := range s.Spec.PolicyTypes {
		if t != PolicyTypeIngress && t != PolicyTypeEgress {
			errs.Invalid(p.Child("policyTypes").Index(i), string(t), "is not one of Ingress, Egress")
		}
	}
	for i, r := range s.Spec.Ingress {
		checkK8sRule(&errs, p.Child("ingress").Index(i), "from", r.From, r.Ports)
	}
	for i, r := range s.Spec.Egress {
		checkK8sRule(&errs, p.Child("egress").Index(i), "to", r.To, r.Ports)
	}
	return errs
}

func checkK8sRule(errs *ErrorList, p Path, peersName string, peers []K8sNetworkPolicyPeer, ports []K8sNetworkPolicyPort) {
	for i, pt := range ports {
		pp := p.Child("ports").Index(i)
		if pt.Protocol != nil && !slices.Contains([]string{"TCP", "UDP", "SCTP"}, pt.Protocol.String()) {
			errs.Invalid(pp.Child("protocol"), pt.Protocol.String(), "is not one of TCP, UDP, SCTP")
		}
		if pt.Port != nil {
			if pt.Port.PortName == "" && pt.Port.MinPort != pt.Port.MaxPort {
				errs.Invalid(pp.Child("port"), pt.Port.String(), "must be one port or a port name (use endPort for a range)")
			} else {
				validatePort(errs, pp.Child("port"), *pt.Port)
			}
		}
		if pt.EndPort != nil {
			switch {
			case pt.Port == nil || pt.Port.PortName != "":
				errs.Add(pp.Child("endPort"), "needs a numeric port")
			case *pt.EndPort < pt.Port.MinPort || *pt.EndPort > 65535:
				errs.Invalid(pp.Child("endPort"), *pt.EndPort, fmt.Sprintf("must be from port (%d) to 65535", pt.Port.MinPort))
			}
		}
	}
	for i, peer := range peers {
		pp := p.Child(peersName).Index(i)
		if peer.IPBlock != nil {
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				errs.Add(pp.Child("ipBlock"), "must not be set together with podSelector or namespaceSelector")
			}
			cidr, err := netip.ParsePrefix(peer.IPBlock.CIDR)
			if err != nil {
				errs.Invalid(pp.Child("ipBlock").Child("cidr"), peer.IPBlock.CIDR, "is not a CIDR")
			}
			for j, e := range peer.IPBlock.Except {
				ep, err := netip.ParsePrefix(e)
				if err != nil || (cidr.IsValid() && (!cidr.Overlaps(ep) || ep.Bits() < cidr.Bits())) {
					errs.Invalid(pp.Child("ipBlock").Child("except").Index(j), e, "is not a CIDR inside cidr")
				}
			}
		} else if peer.PodSelector == nil && peer.NamespaceSelector == nil {
			errs.Add(pp, "must set podSelector, namespaceSelector or ipBlock")
		}
		if peer.PodSelector != nil {
			checkK8sSelector(errs, pp.Child("podSelector"), *peer.PodSelector)
		}
		if peer.NamespaceSelector != nil {
			checkK8sSelector(errs, pp.Child("namespaceSelector"), *peer.NamespaceSelector)
		}
	}
}

func checkK8sSelector(errs *ErrorList, p Path, s K8sLabelSelector) {
	bad := func(v string) bool { return strings.ContainsAny(v, `'"`) }
	for k, v := range s.MatchLabels {
		if bad(k) || bad(v) || k == "" {
			errs.Invalid(p.Child("matchLabels").Key(k), v, "is not a label key and value")
		}
	}
	for i, e := range s.MatchExpressions {
		ep := p.Child("matchExpressions").Index(i)
		if e.Key == "" || bad(e.Key) {
			errs.Invalid(ep.Child("key"), e.Key, "is not a label key")
		}
		switch e.Operator {
		case "In", "NotIn":
			if len(e.Values) == 0 {
				errs.Add(ep.Child("values"), "must not be empty with operator %s", e.Operator)
			}
		case "Exists", "DoesNotExist":
			if len(e.Values) > 0 {
				errs.Add(ep.Child("values"), "must be empty with operator %s", e.Operator)
			}
		default:
			errs.Invalid(ep.Child("operator"), e.Operator, "is not one of In, NotIn, Exists, DoesNotExist")
		}
		for j, v := range e.Values {
			if bad(v) {
				errs.Invalid(ep.Child("values").Index(j), v, "is not a label value")
			}
		}
	}
	if len(*errs) == 0 {
		checkSelector(errs, p, k8sSelector(s))
	}
}

// k8sSelector writes a Kubernetes label selector in Calico's syntax; the
// empty selector is all().
func k8sSelector(s K8sLabelSelector) string {
	var terms []string
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		terms = append(terms, fmt.Sprintf("%s == '%s'", k, s.MatchLabels[k]))
	}
	for _, e := range s.MatchExpressions {
		vals := make([]string, len(e.Values))
		for i, v := range e.Values {
			vals[i] = "'" + v + "'"
		}
		switch e.Operator {
		case "In":
			terms = append(terms, fmt.Sprintf("%s in {%s}", e.Key, strings.Join(vals, ", ")))
		case "NotIn":
			terms = append(terms, fmt.Sprintf("%s not in {%s}", e.Key, strings.Join(vals, ", ")))
		case "Exists":
			terms = append(terms, fmt.Sprintf("has(%s)", e.Key))
		case "DoesNotExist":
			terms = append(terms, fmt.Sprintf("!has(%s)", e.Key))
		}
	}
	if len(terms) == 0 {
		return "all()"
	}
	return strings.Join(terms, " && ")
}
