package k8sconv

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
)

func cnp(name string, spec cnpv1.ClusterNetworkPolicySpec) *cnpv1.ClusterNetworkPolicy {
	return &cnpv1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func labels(kv ...string) metav1.LabelSelector {
	s := metav1.LabelSelector{}
	if len(kv) > 0 {
		s.MatchLabels = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func lp(s metav1.LabelSelector) *metav1.LabelSelector { return &s }

func tcpPort(n int32) cnpv1.ClusterNetworkPolicyProtocol {
	return cnpv1.ClusterNetworkPolicyProtocol{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1.Port{Number: n}}}
}

func TestClusterNetworkPolicyToPolicy(t *testing.T) {
	sensitive := cnpv1.ClusterNetworkPolicySubject{Namespaces: lp(labels("kubernetes.io/metadata.name", "sensitive-ns"))}
	for _, tc := range []struct {
		name string
		cnp  *cnpv1.ClusterNetworkPolicy
		want string
		err  string
	}{
		{name: "admin: namespaces subject, Deny/Accept/Pass, namespaces and pods peers", cnp: cnp("sensitive", cnpv1.ClusterNetworkPolicySpec{
			Tier: cnpv1.AdminTier, Priority: 10, Subject: sensitive,
			Ingress: []cnpv1.ClusterNetworkPolicyIngressRule{
				{Name: "allow-monitoring", Action: cnpv1.ClusterNetworkPolicyRuleActionAccept,
					From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: lp(labels("kubernetes.io/metadata.name", "monitoring"))}}},
				{Name: "pass-app", Action: cnpv1.ClusterNetworkPolicyRuleActionPass,
					From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Pods: &cnpv1.NamespacedPod{NamespaceSelector: labels(), PodSelector: labels("app", "client")}}}},
				{Action: cnpv1.ClusterNetworkPolicyRuleActionDeny,
					From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: lp(labels())}}},
			},
		}), want: `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-admin.sensitive}
spec:
  tier: kube-admin
  order: 10
  namespaceSelector: kubernetes.io/metadata.name == 'sensitive-ns'
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress]
  ingress:
  - {action: Allow, source: {namespaceSelector: kubernetes.io/metadata.name == 'monitoring'}, metadata: {annotations: {name: allow-monitoring}}}
  - {action: Pass, source: {selector: "projectcalico.org/orchestrator == 'k8s' && app == 'client'", namespaceSelector: all()}, metadata: {annotations: {name: pass-app}}}
  - {action: Deny, source: {namespaceSelector: all()}}
`},
		{name: "baseline: pods subject, egress to networks of both families, pods, ports", cnp: cnp("baseline-egress", cnpv1.ClusterNetworkPolicySpec{
			Tier: cnpv1.BaselineTier, Priority: 1000,
			Subject: cnpv1.ClusterNetworkPolicySubject{Pods: &cnpv1.NamespacedPod{
				NamespaceSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod"}}}},
				PodSelector:       labels("app", "web"),
			}},
			Egress: []cnpv1.ClusterNetworkPolicyEgressRule{
				{Name: "dns", Action: cnpv1.ClusterNetworkPolicyRuleActionAccept,
					To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Pods: &cnpv1.NamespacedPod{NamespaceSelector: labels("kubernetes.io/metadata.name", "kube-system"), PodSelector: labels("k8s-app", "kube-dns")}}},
					Protocols: []cnpv1.ClusterNetworkPolicyProtocol{
						{UDP: &cnpv1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1.Port{Number: 53}}},
						tcpPort(53),
					}},
				{Name: "deny-outside", Action: cnpv1.ClusterNetworkPolicyRuleActionDeny,
					To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1.CIDR{"0.0.0.0/0", "::/0", "10.1.2.3/8"}}},
					Protocols: []cnpv1.ClusterNetworkPolicyProtocol{
						tcpPort(443),
						{TCP: &cnpv1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &cnpv1.Port{Range: &cnpv1.PortRange{Start: 8000, End: 8080}}}},
						{SCTP: &cnpv1.ClusterNetworkPolicyProtocolSCTP{}},
					}},
			},
		}), want: `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-baseline.baseline-egress}
spec:
  tier: kube-baseline
  order: 1000
  namespaceSelector: "env in {'prod'}"
  selector: projectcalico.org/orchestrator == 'k8s' && app == 'web'
  types: [Egress]
  egress:
  - {action: Allow, protocol: TCP, destination: {selector: "projectcalico.org/orchestrator == 'k8s' && k8s-app == 'kube-dns'", namespaceSelector: kubernetes.io/metadata.name == 'kube-system', ports: [53]}, metadata: {annotations: {name: dns}}}
  - {action: Allow, protocol: UDP, destination: {selector: "projectcalico.org/orchestrator == 'k8s' && k8s-app == 'kube-dns'", namespaceSelector: kubernetes.io/metadata.name == 'kube-system', ports: [53]}, metadata: {annotations: {name: dns}}}
  - {action: Deny, protocol: SCTP, destination: {nets: [0.0.0.0/0, 10.0.0.0/8]}, metadata: {annotations: {name: deny-outside}}}
  - {action: Deny, protocol: SCTP, destination: {nets: ["::/0"]}, metadata: {annotations: {name: deny-outside}}}
  - {action: Deny, protocol: TCP, destination: {nets: [0.0.0.0/0, 10.0.0.0/8], ports: [443, "8000:8080"]}, metadata: {annotations: {name: deny-outside}}}
  - {action: Deny, protocol: TCP, destination: {nets: ["::/0"], ports: [443, "8000:8080"]}, metadata: {annotations: {name: deny-outside}}}
`},
		{name: "a named port, whatever the pod port's protocol", cnp: cnp("named", cnpv1.ClusterNetworkPolicySpec{
			Tier: cnpv1.AdminTier, Priority: 0, Subject: sensitive,
			Ingress: []cnpv1.ClusterNetworkPolicyIngressRule{{Action: cnpv1.ClusterNetworkPolicyRuleActionAccept,
				From:      []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: lp(labels())}},
				Protocols: []cnpv1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "metrics"}, tcpPort(9100)}}},
		}), want: `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-admin.named}
spec:
  tier: kube-admin
  order: 0
  namespaceSelector: kubernetes.io/metadata.name == 'sensitive-ns'
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress]
  ingress:
  - {action: Allow, protocol: SCTP, source: {namespaceSelector: all()}, destination: {ports: [metrics]}}
  - {action: Allow, protocol: TCP, source: {namespaceSelector: all()}, destination: {ports: [metrics, 9100]}}
  - {action: Allow, protocol: UDP, source: {namespaceSelector: all()}, destination: {ports: [metrics]}}
`},
		{name: "no rules: no types", cnp: cnp("empty", cnpv1.ClusterNetworkPolicySpec{Tier: cnpv1.BaselineTier, Priority: 5, Subject: sensitive}), want: `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-baseline.empty}
spec: {tier: kube-baseline, order: 5, namespaceSelector: kubernetes.io/metadata.name == 'sensitive-ns', selector: projectcalico.org/orchestrator == 'k8s'}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ClusterNetworkPolicyToPolicy(tc.cnp)
			wantErr(t, err, tc.err)
			checkResource(t, g, tc.want)
		})
	}
}

// TestClusterNetworkPolicyFailsClosed: whatever cannot be translated turns
// every direction that has rules into a single Deny, and the error names
// the policy and the field.
func TestClusterNetworkPolicyFailsClosed(t *testing.T) {
	sub := cnpv1.ClusterNetworkPolicySubject{Namespaces: lp(labels("team", "a"))}
	accept := cnpv1.ClusterNetworkPolicyRuleActionAccept
	okIn := cnpv1.ClusterNetworkPolicyIngressRule{Action: accept, From: []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: lp(labels())}}}
	okOut := cnpv1.ClusterNetworkPolicyEgressRule{Action: accept, To: []cnpv1.ClusterNetworkPolicyEgressPeer{{Namespaces: lp(labels())}}}
	const both = `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-admin.p}
spec:
  tier: kube-admin
  order: 3
  namespaceSelector: team == 'a'
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress, Egress]
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
`
	for _, tc := range []struct {
		name   string
		mod    func(*cnpv1.ClusterNetworkPolicySpec)
		want   string
		errMsg string
	}{
		{"a nodes peer", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Egress[0].To = []cnpv1.ClusterNetworkPolicyEgressPeer{{Nodes: lp(labels())}}
		}, both, "ClusterNetworkPolicy p: spec.egress[0]: to[0].nodes: nodes peers are not supported"},
		{"a domainNames peer", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Egress[0].To = []cnpv1.ClusterNetworkPolicyEgressPeer{{DomainNames: []cnpv1.DomainName{"example.com"}}}
		}, both, "spec.egress[0]: to[0].domainNames: domain name peers are not supported"},
		{"a peer of a newer API (no field known)", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Ingress[0].From = []cnpv1.ClusterNetworkPolicyIngressPeer{{}}
		}, both, "spec.ingress[0]: from[0]: sets no peer field known to Serval"},
		{"a peer with two fields", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Egress[0].To = []cnpv1.ClusterNetworkPolicyEgressPeer{{Namespaces: lp(labels()), Networks: []cnpv1.CIDR{"10.0.0.0/8"}}}
		}, both, "spec.egress[0]: to[0]: sets more than one peer field"},
		{"no peers", func(s *cnpv1.ClusterNetworkPolicySpec) { s.Ingress[0].From = nil }, both, "spec.ingress[0]: from: has no peers"},
		{"a bad CIDR", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Egress[0].To = []cnpv1.ClusterNetworkPolicyEgressPeer{{Networks: []cnpv1.CIDR{"10.0.0.0/33"}}}
		}, both, `spec.egress[0]: to[0].networks[0]: "10.0.0.0/33" is not a CIDR`},
		{"an unknown action", func(s *cnpv1.ClusterNetworkPolicySpec) { s.Ingress[0].Action = "Allow" }, both,
			`spec.ingress[0]: action: "Allow" is not an action (Accept, Deny, Pass)`},
		{"a protocol with nothing set", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Ingress[0].Protocols = []cnpv1.ClusterNetworkPolicyProtocol{{}}
		}, both, "spec.ingress[0]: protocols[0]: sets 0 of tcp, udp, sctp, destinationNamedPort"},
		{"a bad port range", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Ingress[0].Protocols = []cnpv1.ClusterNetworkPolicyProtocol{{UDP: &cnpv1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1.Port{Range: &cnpv1.PortRange{Start: 9000, End: 80}}}}}
		}, both, "spec.ingress[0]: protocols[0].udp.destinationPort: 9000-80 is not a port range"},
		{"a bad peer selector", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Ingress[0].From = []cnpv1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}}}
		}, both, "spec.ingress[0]: from[0].namespaces: matchExpressions[0]: operator In needs values"},
		{"only ingress rules: only ingress denies", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Egress = nil
			s.Ingress[0].Action = "Drop"
		}, `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-admin.p}
spec:
  tier: kube-admin
  order: 3
  namespaceSelector: team == 'a'
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress]
  ingress: [{action: Deny}]
`, `spec.ingress[0]: action: "Drop"`},
		{"a subject of a newer API: every pod", func(s *cnpv1.ClusterNetworkPolicySpec) {
			s.Subject = cnpv1.ClusterNetworkPolicySubject{}
		}, `
kind: GlobalNetworkPolicy
apiVersion: projectcalico.org/v3
metadata: {name: kcnp.kube-admin.p}
spec:
  tier: kube-admin
  order: 3
  selector: projectcalico.org/orchestrator == 'k8s'
  types: [Ingress, Egress]
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
`, "ClusterNetworkPolicy p: spec.subject: sets neither namespaces nor pods"},
		{"an unknown tier: kube-admin", func(s *cnpv1.ClusterNetworkPolicySpec) { s.Tier = "Emergency" }, both,
			`ClusterNetworkPolicy p: spec.tier: "Emergency" is not a tier (Admin, Baseline)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := cnpv1.ClusterNetworkPolicySpec{Tier: cnpv1.AdminTier, Priority: 3, Subject: sub,
				Ingress: []cnpv1.ClusterNetworkPolicyIngressRule{*okIn.DeepCopy()}, Egress: []cnpv1.ClusterNetworkPolicyEgressRule{*okOut.DeepCopy()}}
			tc.mod(&spec)
			g, err := ClusterNetworkPolicyToPolicy(cnp("p", spec))
			wantErr(t, err, tc.errMsg)
			checkResource(t, g, tc.want)
		})
	}
}

func TestKubeTiers(t *testing.T) {
	want := []string{`
kind: Tier
apiVersion: projectcalico.org/v3
metadata: {name: kube-admin}
spec: {order: 1000, defaultAction: Pass}
`, `
kind: Tier
apiVersion: projectcalico.org/v3
metadata: {name: kube-baseline}
spec: {order: 10000000, defaultAction: Pass}
`}
	tiers := KubeTiers()
	if len(tiers) != len(want) {
		t.Fatalf("%d tiers, want %d", len(tiers), len(want))
	}
	for i, tr := range tiers {
		checkResource(t, tr, want[i])
	}
}
