package admission

import (
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// BenchmarkAdmitWEP is what validating one endpoint costs the agent, which
// validates every object it reads (100,000 endpoints at start-up).
func BenchmarkAdmitWEP(b *testing.B) {
	f := NewFilter(nopCB{}, NewRegistry(), nil)
	mk := func() api.Resource {
		w := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint", APIVersion: api.APIVersion},
			ObjectMeta: api.ObjectMeta{Name: "node1-k8s-pod--1-eth0", Namespace: "ns1", ResourceVersion: "5", Labels: map[string]string{"app": "web", "projectcalico.org/namespace": "ns1", "projectcalico.org/orchestrator": "k8s", "tier": "t1"}},
			Spec:       api.WorkloadEndpointSpec{Node: "node1", Orchestrator: "k8s", Pod: "pod-1", Endpoint: "eth0", InterfaceName: "cali12345678901", IPNetworks: []string{"10.65.0.1/32"}, Profiles: []string{"kns.ns1", "ksa.ns1.default"}, ContainerID: "abc"}}
		return w
	}
	b.ReportAllocs()
	for b.Loop() {
		o := mk()
		f.Admit(datastore.Update{Type: datastore.Added, Key: api.KeyOf(o), Object: o})
	}
}

type nopCB struct{}

func (nopCB) OnStatus(datastore.Status)    {}
func (nopCB) OnUpdates([]datastore.Update) {}
