package k8sconv

import (
	"errors"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/servalnet/serval/internal/api"
)

// NetworkPolicyToPolicy translates a Kubernetes NetworkPolicy as Calico
// does, into the NetworkPolicy knp.default.<name> of its namespace (tier
// default, order 1000). The translation is api's conversion of the staged
// kind (StagedKubernetesNetworkPolicy.Enforced): the Kubernetes object is
// mapped onto its mirror types, so both kinds translate alike.
//
// A rule that cannot be translated is left out and reported in the error,
// as Calico does; its rules only allow, so leaving one out denies what it
// would have allowed. The policy's types are computed before, so a
// direction whose every rule was left out still denies. A podSelector that
// cannot be translated makes the policy apply to every pod of its
// namespace with no rules: it denies everything, and the error says why.
func NetworkPolicyToPolicy(np *networkingv1.NetworkPolicy) (*api.NetworkPolicy, error) {
	who := fmt.Sprintf("NetworkPolicy %s/%s", np.Namespace, np.Name)
	s := &api.StagedKubernetesNetworkPolicy{
		TypeMeta:   api.TypeMeta{Kind: "StagedKubernetesNetworkPolicy", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: np.Name, Namespace: np.Namespace},
	}
	s.Spec.StagedAction = api.StagedActionSet
	var errs []error
	// Kubernetes' defaulting (the API server's, done here too for objects
	// that did not go through one), before any rule is left out.
	s.Spec.PolicyTypes = []api.PolicyType{api.PolicyTypeIngress}
	if len(np.Spec.PolicyTypes) > 0 {
		s.Spec.PolicyTypes = nil
		for i, t := range np.Spec.PolicyTypes {
			if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
				errs = append(errs, fmt.Errorf("%s: spec.policyTypes[%d]: %q is not Ingress or Egress (ignored, as Calico ignores it)", who, i, t))
				continue
			}
			s.Spec.PolicyTypes = append(s.Spec.PolicyTypes, api.PolicyType(t))
		}
	} else if len(np.Spec.Egress) > 0 {
		s.Spec.PolicyTypes = append(s.Spec.PolicyTypes, api.PolicyTypeEgress)
	}
	if err := checkSelector(&np.Spec.PodSelector); err != nil {
		errs = append(errs, fmt.Errorf("%s: spec.podSelector: %w (the policy denies every pod of the namespace)", who, err))
	} else {
		s.Spec.PodSelector = *labelSelector(&np.Spec.PodSelector)
		for i, r := range np.Spec.Ingress {
			in := api.K8sNetworkPolicyIngress{Ports: k8sPorts(r.Ports), From: k8sPeers(r.From)}
			if err := checkRule(s, &in, nil); err != nil {
				errs = append(errs, fmt.Errorf("%s: spec.ingress[%d] left out: %w", who, i, err))
				continue
			}
			s.Spec.Ingress = append(s.Spec.Ingress, in)
		}
		for i, r := range np.Spec.Egress {
			out := api.K8sNetworkPolicyEgress{Ports: k8sPorts(r.Ports), To: k8sPeers(r.To)}
			if err := checkRule(s, nil, &out); err != nil {
				errs = append(errs, fmt.Errorf("%s: spec.egress[%d] left out: %w", who, i, err))
				continue
			}
			s.Spec.Egress = append(s.Spec.Egress, out)
		}
	}
	p := s.Enforced()
	p.UID = string(np.UID)
	p.ResourceVersion = np.ResourceVersion
	p.CreationTimestamp = timePtr(np.CreationTimestamp.Time)
	return p, errors.Join(errs...)
}

// checkRule checks one rule, alone in a copy of the policy, both as the
// Kubernetes object (api's checks of the staged kind) and as translated.
func checkRule(s *api.StagedKubernetesNetworkPolicy, in *api.K8sNetworkPolicyIngress, out *api.K8sNetworkPolicyEgress) error {
	one := *s
	// The rule is what is checked: the policy's name (a Kubernetes name,
	// which may hold more dots than a Calico one) is checked on the result.
	one.Name = "rule"
	one.Spec.Ingress, one.Spec.Egress = nil, nil
	if in != nil {
		one.Spec.Ingress = []api.K8sNetworkPolicyIngress{*in}
	}
	if out != nil {
		one.Spec.Egress = []api.K8sNetworkPolicyEgress{*out}
	}
	if fe := one.Validate(); len(fe) > 0 {
		return fe[0]
	}
	if fe := one.Enforced().Validate(); len(fe) > 0 {
		return fe[0]
	}
	return nil
}

func k8sPorts(ports []networkingv1.NetworkPolicyPort) []api.K8sNetworkPolicyPort {
	var out []api.K8sNetworkPolicyPort
	for _, p := range ports {
		var o api.K8sNetworkPolicyPort
		if p.Protocol != nil {
			proto := api.ProtocolFromString(string(*p.Protocol))
			o.Protocol = &proto
		}
		if p.Port != nil {
			var port api.Port
			if p.Port.Type == intstr.String {
				port = api.NamedPort(p.Port.StrVal)
			} else {
				port = api.SinglePort(int(p.Port.IntVal))
			}
			o.Port = &port
		}
		if p.EndPort != nil {
			e := int(*p.EndPort)
			o.EndPort = &e
		}
		out = append(out, o)
	}
	return out
}

func k8sPeers(peers []networkingv1.NetworkPolicyPeer) []api.K8sNetworkPolicyPeer {
	var out []api.K8sNetworkPolicyPeer
	for _, p := range peers {
		o := api.K8sNetworkPolicyPeer{
			PodSelector:       labelSelector(p.PodSelector),
			NamespaceSelector: labelSelector(p.NamespaceSelector),
		}
		if b := p.IPBlock; b != nil {
			o.IPBlock = &api.K8sIPBlock{CIDR: b.CIDR, Except: append([]string(nil), b.Except...)}
		}
		out = append(out, o)
	}
	return out
}
