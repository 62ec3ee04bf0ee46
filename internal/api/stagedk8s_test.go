package api

import (
	"encoding/json"
	"os"
	"testing"
)

// TestStagedKubernetesConversion: the Calico policy a staged Kubernetes
// policy becomes, as Calico converts Kubernetes NetworkPolicy, and valid.
func TestStagedKubernetesConversion(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/stagedpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Load("stagedpolicy.yaml", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"test-network-policy": `{"name":"knp.default.test-network-policy","namespace":"default","spec":{"tier":"default","order":1000,` +
			`"ingress":[{"action":"Allow","protocol":"TCP","source":{"nets":["172.17.0.0/16"],"notNets":["172.17.1.0/24"]},"destination":{"ports":[6379]}},` +
			`{"action":"Allow","protocol":"TCP","source":{"selector":"projectcalico.org/orchestrator == 'k8s'","namespaceSelector":"project == 'myproject'"},"destination":{"ports":[6379]}},` +
			`{"action":"Allow","protocol":"TCP","source":{"selector":"projectcalico.org/orchestrator == 'k8s' \u0026\u0026 role == 'frontend'"},"destination":{"ports":[6379]}}],` +
			`"egress":[{"action":"Allow","protocol":"TCP","destination":{"nets":["10.0.0.0/24"],"ports":[5978]}}],` +
			`"selector":"projectcalico.org/orchestrator == 'k8s' \u0026\u0026 role == 'db'","types":["Ingress","Egress"]}}`,
		"web": `{"name":"knp.default.web","namespace":"default","spec":{"tier":"default","order":1000,` +
			`"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":["http","8000:8080"]}},{"action":"Allow","protocol":"UDP"}],` +
			`"selector":"projectcalico.org/orchestrator == 'k8s' \u0026\u0026 app in {'web', 'api'}","types":["Ingress"]}}`,
	}
	seen := 0
	for _, d := range docs {
		s, ok := d.Resource.(*StagedKubernetesNetworkPolicy)
		if !ok || want[s.Name] == "" {
			continue
		}
		seen++
		np := s.Enforced()
		if errs := np.Validate(); len(errs) > 0 {
			t.Errorf("%s: the converted policy is invalid: %v", s.Name, errs)
		}
		b, _ := json.Marshal(struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Spec      NetworkPolicySpec `json:"spec"`
		}{np.Name, np.Namespace, np.Spec})
		if string(b) != want[s.Name] {
			t.Errorf("%s converts to\n%s\nwant\n%s", s.Name, b, want[s.Name])
		}
	}
	if seen != 2 {
		t.Errorf("converted %d policies, want 2", seen)
	}
}

// TestEnforcedKubernetesSemantics: policyTypes defaulted as Kubernetes
// defines it (Ingress always, Egress when there are egress rules), listed
// types in Calico's order, SCTP, endPort, named ports and ipBlock except
// (IPv4 and IPv6, written as networks).
func TestEnforcedKubernetesSemantics(t *testing.T) {
	tcp, sctp := ProtocolFromString("TCP"), ProtocolFromString("SCTP")
	end := 9000
	named := NamedPort("metrics")
	p8000 := SinglePort(8000)
	anyPeer := []K8sNetworkPolicyPeer{{PodSelector: &K8sLabelSelector{}}}
	for _, tc := range []struct {
		name string
		spec StagedKubernetesNetworkPolicySpec
		want string // types, ingress, egress as JSON
	}{
		{"no types, ingress only", StagedKubernetesNetworkPolicySpec{Ingress: []K8sNetworkPolicyIngress{{}}},
			`{"types":["Ingress"],"ingress":[{"action":"Allow"}],"egress":null}`},
		{"no types, no rules: deny ingress", StagedKubernetesNetworkPolicySpec{},
			`{"types":["Ingress"],"ingress":null,"egress":null}`},
		{"no types, egress rules: both", StagedKubernetesNetworkPolicySpec{Egress: []K8sNetworkPolicyEgress{{To: anyPeer}}},
			`{"types":["Ingress","Egress"],"ingress":null,"egress":[{"action":"Allow","destination":{"selector":"projectcalico.org/orchestrator == 'k8s'"}}]}`},
		{"types in Calico's order", StagedKubernetesNetworkPolicySpec{PolicyTypes: []PolicyType{PolicyTypeEgress, PolicyTypeIngress}},
			`{"types":["Ingress","Egress"],"ingress":null,"egress":null}`},
		{"unknown types only: ingress, as Calico", StagedKubernetesNetworkPolicySpec{PolicyTypes: []PolicyType{"Sideways"}},
			`{"types":["Ingress"],"ingress":null,"egress":null}`},
		{"egress only", StagedKubernetesNetworkPolicySpec{PolicyTypes: []PolicyType{PolicyTypeEgress}},
			`{"types":["Egress"],"ingress":null,"egress":null}`},
		{"SCTP, endPort, named port", StagedKubernetesNetworkPolicySpec{Ingress: []K8sNetworkPolicyIngress{{Ports: []K8sNetworkPolicyPort{
			{Protocol: &sctp, Port: &p8000, EndPort: &end}, {Protocol: &tcp, Port: &named}}}}},
			`{"types":["Ingress"],"ingress":[{"action":"Allow","protocol":"SCTP","destination":{"ports":["8000:9000"]}},{"action":"Allow","protocol":"TCP","destination":{"ports":["metrics"]}}],"egress":null}`},
		{"Calico's order: protocol by name, then peer; ports merged into ranges, named first", StagedKubernetesNetworkPolicySpec{Ingress: []K8sNetworkPolicyIngress{{
			From: []K8sNetworkPolicyPeer{{PodSelector: &K8sLabelSelector{MatchLabels: map[string]string{"a": "1"}}}, {IPBlock: &K8sIPBlock{CIDR: "10.0.0.0/8"}}},
			Ports: []K8sNetworkPolicyPort{{Protocol: &tcp, Port: ptr(SinglePort(82))}, {Protocol: ptr(ProtocolFromString("UDP")), Port: ptr(SinglePort(53))},
				{Port: ptr(SinglePort(80))}, {Protocol: &tcp, Port: ptr(NamedPort("foo"))}, {Protocol: &tcp, Port: ptr(SinglePort(81))},
				{Protocol: &tcp, Port: ptr(SinglePort(9090))}, {Protocol: &tcp, Port: ptr(SinglePort(80))}, {Protocol: &sctp}}}}},
			`{"types":["Ingress"],"ingress":[` +
				`{"action":"Allow","protocol":"SCTP","source":{"selector":"projectcalico.org/orchestrator == 'k8s' \u0026\u0026 a == '1'"}},` +
				`{"action":"Allow","protocol":"SCTP","source":{"nets":["10.0.0.0/8"]}},` +
				`{"action":"Allow","protocol":"TCP","source":{"selector":"projectcalico.org/orchestrator == 'k8s' \u0026\u0026 a == '1'"},"destination":{"ports":["foo","80:82",9090]}},` +
				`{"action":"Allow","protocol":"TCP","source":{"nets":["10.0.0.0/8"]},"destination":{"ports":["foo","80:82",9090]}},` +
				`{"action":"Allow","protocol":"UDP","source":{"selector":"projectcalico.org/orchestrator == 'k8s' \u0026\u0026 a == '1'"},"destination":{"ports":[53]}},` +
				`{"action":"Allow","protocol":"UDP","source":{"nets":["10.0.0.0/8"]},"destination":{"ports":[53]}}],"egress":null}`},
		{"ipBlock except, both families", StagedKubernetesNetworkPolicySpec{Egress: []K8sNetworkPolicyEgress{{To: []K8sNetworkPolicyPeer{
			{IPBlock: &K8sIPBlock{CIDR: "10.1.2.3/16", Except: []string{"10.1.7.9/24"}}},
			{IPBlock: &K8sIPBlock{CIDR: "fd00::1/64", Except: []string{"fd00::/80"}}}}}}},
			`{"types":["Ingress","Egress"],"ingress":null,"egress":[{"action":"Allow","destination":{"nets":["10.1.0.0/16"],"notNets":["10.1.7.0/24"]}},{"action":"Allow","destination":{"nets":["fd00::/64"],"notNets":["fd00::/80"]}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &StagedKubernetesNetworkPolicy{Spec: tc.spec}
			s.Name, s.Namespace = "p", "ns"
			np := s.Enforced()
			np.SetDefaults()
			if errs := np.Validate(); len(errs) > 0 {
				t.Errorf("the converted policy is invalid: %v", errs)
			}
			b, _ := json.Marshal(struct {
				Types   []PolicyType `json:"types"`
				Ingress []Rule       `json:"ingress"`
				Egress  []Rule       `json:"egress"`
			}{np.Spec.Types, np.Spec.Ingress, np.Spec.Egress})
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

// TestClusterNetworkPolicyNamesAndTiers: the names Calico gives converted
// ClusterNetworkPolicies are valid GlobalNetworkPolicy names, and the two
// tiers have their fixed orders.
func TestClusterNetworkPolicyNamesAndTiers(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"kcnp.kube-admin.deny-all", true},
		{"kcnp.kube-baseline.a.b", true},
		{"kcnp.other.x", false},
		{"a.b.c", false},
	} {
		g := &GlobalNetworkPolicy{Spec: GlobalNetworkPolicySpec{Tier: "kube-admin"}}
		g.Name = tc.name
		g.SetDefaults()
		if errs := g.Validate(); (len(errs) == 0) != tc.ok {
			t.Errorf("%s: valid %v, want %v (%v)", tc.name, len(errs) == 0, tc.ok, errs)
		}
	}
	for _, tc := range []struct {
		name  string
		order float64
	}{{KubeAdminTierName, 1000}, {KubeBaselineTierName, 10_000_000}} {
		tr := &Tier{}
		tr.Name = tc.name
		tr.SetDefaults()
		if tr.Spec.Order == nil || *tr.Spec.Order != tc.order {
			t.Errorf("tier %s: order %v, want %v", tc.name, tr.Spec.Order, tc.order)
		}
		wrong := tc.order + 1
		tr.Spec.Order = &wrong
		if errs := tr.Validate(); len(errs) == 0 {
			t.Errorf("tier %s accepts order %v", tc.name, wrong)
		}
	}
}
