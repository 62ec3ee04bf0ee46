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
