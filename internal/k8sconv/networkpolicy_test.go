package k8sconv

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func proto(p corev1.Protocol) *corev1.Protocol { return &p }
func portNum(n int) *intstr.IntOrString        { v := intstr.FromInt32(int32(n)); return &v }
func portName(s string) *intstr.IntOrString    { v := intstr.FromString(s); return &v }
func i32(n int32) *int32                       { return &n }

func knp(name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: spec}
}

func TestNetworkPolicyToPolicy(t *testing.T) {
	sel := func(kv ...string) *metav1.LabelSelector {
		s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			s.MatchLabels[kv[i]] = kv[i+1]
		}
		return s
	}
	for _, tc := range []struct {
		name string
		np   *networkingv1.NetworkPolicy
		want string
		err  string
	}{
		{name: "the Kubernetes documentation's example", np: knp("test-network-policy", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "172.17.0.0/16", Except: []string{"172.17.1.0/24"}}},
					{NamespaceSelector: sel("project", "myproject")},
					{PodSelector: sel("role", "frontend")},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: proto(corev1.ProtocolTCP), Port: portNum(6379)}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: proto(corev1.ProtocolTCP), Port: portNum(5978)}},
			}},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.test-network-policy, namespace: shop}
spec:
  tier: default
  order: 1000
  selector: projectcalico.org/orchestrator == 'k8s' && role == 'db'
  types: [Ingress, Egress]
  ingress:
  - {action: Allow, protocol: TCP, source: {nets: [172.17.0.0/16], notNets: [172.17.1.0/24]}, destination: {ports: [6379]}}
  - {action: Allow, protocol: TCP, source: {selector: projectcalico.org/orchestrator == 'k8s', namespaceSelector: project == 'myproject'}, destination: {ports: [6379]}}
  - {action: Allow, protocol: TCP, source: {selector: projectcalico.org/orchestrator == 'k8s' && role == 'frontend'}, destination: {ports: [6379]}}
  egress:
  - {action: Allow, protocol: TCP, destination: {nets: [10.0.0.0/24], ports: [5978]}}
`},
		{name: "matchExpressions, namespace and pod selector together, empty namespaceSelector", np: knp("exprs", networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}},
				{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
			}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"dev"}}}},
					PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "monitor", Operator: metav1.LabelSelectorOpExists}}}},
				{NamespaceSelector: &metav1.LabelSelector{}},
			}}},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.exprs, namespace: shop}
spec:
  tier: default
  order: 1000
  selector: projectcalico.org/orchestrator == 'k8s' && app in {'web', 'api'} && !has(canary)
  types: [Ingress]
  ingress:
  - {action: Allow, source: {selector: "projectcalico.org/orchestrator == 'k8s' && has(monitor)", namespaceSelector: "env not in {'dev'}"}}
  - {action: Allow, source: {selector: projectcalico.org/orchestrator == 'k8s', namespaceSelector: all()}}
`},
		{name: "empty from and to allow everything; no policyTypes with egress rules is both", np: knp("open", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{}},
			Egress:  []networkingv1.NetworkPolicyEgressRule{{}},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.open, namespace: shop}
spec:
  tier: default
  order: 1000
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress, Egress]
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
`},
		{name: "default deny: no rules", np: knp("deny", networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.deny, namespace: shop}
spec: {tier: default, order: 1000, selector: projectcalico.org/orchestrator == 'k8s', types: [Ingress, Egress]}
`},
		{name: "no policyTypes, no egress rules: ingress only", np: knp("in", networkingv1.NetworkPolicySpec{}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.in, namespace: shop}
spec: {tier: default, order: 1000, selector: projectcalico.org/orchestrator == 'k8s', types: [Ingress]}
`},
		{name: "ports: TCP by default, endPort, named, UDP, SCTP, whole protocol; IPv6 ipBlock", np: knp("ports.v2", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", "web"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/32", Except: []string{"2001:db8:1::/48"}}}},
				Ports: []networkingv1.NetworkPolicyPort{
					{Port: portNum(443)},
					{Protocol: proto(corev1.ProtocolTCP), Port: portNum(8000), EndPort: i32(8080)},
					{Protocol: proto(corev1.ProtocolTCP), Port: portName("metrics")},
					{Protocol: proto(corev1.ProtocolUDP), Port: portNum(53)},
					{Protocol: proto(corev1.ProtocolSCTP)},
				},
			}},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.ports.v2, namespace: shop}
spec:
  tier: default
  order: 1000
  selector: projectcalico.org/orchestrator == 'k8s' && app == 'web'
  types: [Egress]
  egress:
  - {action: Allow, protocol: SCTP, destination: {nets: ["2001:db8::/32"], notNets: ["2001:db8:1::/48"]}}
  - {action: Allow, protocol: TCP, destination: {nets: ["2001:db8::/32"], notNets: ["2001:db8:1::/48"], ports: [metrics, 443, "8000:8080"]}}
  - {action: Allow, protocol: UDP, destination: {nets: ["2001:db8::/32"], notNets: ["2001:db8:1::/48"], ports: [53]}}
`},
		{name: "a rule that cannot be translated is left out, its direction still denies", np: knp("bad-rule", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"192.168.0.0/16"}}}}},
				{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("role", "ok")}}},
			},
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: portNum(70000)}}}},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.bad-rule, namespace: shop}
spec:
  tier: default
  order: 1000
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress, Egress]
  ingress:
  - {action: Allow, source: {selector: projectcalico.org/orchestrator == 'k8s' && role == 'ok'}}
`, err: `NetworkPolicy shop/bad-rule: spec.ingress[0] left out: spec.ingress[0].from[0].ipBlock.except[0]: "192.168.0.0/16" is not a CIDR inside cidr`},
		{name: "an unknown policy type is ignored and reported", np: knp("sideways", networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{"Sideways"},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.sideways, namespace: shop}
spec: {tier: default, order: 1000, selector: projectcalico.org/orchestrator == 'k8s', types: [Ingress]}
`, err: `NetworkPolicy shop/sideways: spec.policyTypes[0]: "Sideways" is not Ingress or Egress`},
		{name: "a podSelector that cannot be translated denies every pod", np: knp("bad-selector", networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Like", Values: []string{"w"}}}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		}), want: `
kind: NetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: knp.default.bad-selector, namespace: shop}
spec: {tier: default, order: 1000, selector: projectcalico.org/orchestrator == 'k8s', types: [Ingress]}
`, err: `NetworkPolicy shop/bad-selector: spec.podSelector: matchExpressions[0]: "Like" is not an operator`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NetworkPolicyToPolicy(tc.np)
			wantErr(t, err, tc.err)
			checkResource(t, p, tc.want)
		})
	}
	// Both bad rules of "bad-rule" are reported.
	_, err := NetworkPolicyToPolicy(knp("x", networkingv1.NetworkPolicySpec{
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: portNum(70000)}}}},
	}))
	wantErr(t, err, "NetworkPolicy shop/x: spec.egress[0] left out: ")
}
