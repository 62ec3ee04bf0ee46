package admission

import (
	"context"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
)

// TestKernelHTTPAllowFailsClosed: against the real kernel, an Allow rule
// with an HTTP match, written behind servalctl's back, must not allow the
// traffic at layer 4 (what dropping the match would do): the policy fails
// closed and w1 cannot reach w2. The same policy without the HTTP match
// allows it, so the denial is the failed-closed policy's, not the set-up's.
func TestKernelHTTPAllowFailsClosed(t *testing.T) {
	needRoot(t)
	_, h, inHost := newNS(t, "host")
	w1Name, w1, inW1 := newNS(t, "w1")
	w2Name, w2, inW2 := newNS(t, "w2")
	// The host needs a route to 169.254.1.1 (any, here a default route
	// out of a spare veth) to answer the workloads' ARP for it by proxy.
	inHost("sh", "-c", "ip link set lo up"+
		" && ip link add eth0 type veth peer name eth0p && ip link set eth0p up && ip link set eth0 up"+
		" && ip addr add 10.0.0.100/32 dev eth0 && ip route add default dev eth0"+
		" && ip link add cali1 type veth peer name eth0 netns "+w1Name+" && ip link set cali1 up"+
		" && ip link add cali2 type veth peer name eth0 netns "+w2Name+" && ip link set cali2 up")
	for _, w := range []struct {
		run  func(...string) string
		addr string
	}{{inW1, "10.65.0.1"}, {inW2, "10.65.0.2"}} {
		w.run("sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add "+w.addr+"/32 dev eth0"+
			" && ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0")
	}
	listen(t, w2, "10.65.0.2:80")

	dp := kernelDataplane(t, h)
	reg := NewRegistry()
	f := NewFilter(calc.New(host, dp, nil), reg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	apply := func() {
		t.Helper()
		if err := dp.Apply(ctx); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	f.OnUpdates(added(objects(t, `
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: p1}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-w1-eth0, namespace: default, labels: {app: client}}
spec: {node: h, orchestrator: cni, workload: w1, endpoint: eth0, interfaceName: cali1, ipNetworks: [10.65.0.1/32], profiles: [p1]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-w2-eth0, namespace: default, labels: {app: web}}
spec: {node: h, orchestrator: cni, workload: w2, endpoint: eth0, interfaceName: cali2, ipNetworks: [10.65.0.2/32], profiles: [p1]}`)...))
	f.OnStatus(datastore.InSync)
	apply()
	if err := dial(w1, "10.65.0.2:80"); err != nil {
		t.Fatalf("w1 cannot reach w2 before any policy: %v", err)
	}

	policy := func(http string) api.Resource {
		return objects(t, `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: web}
spec:
  selector: app == "web"
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}`+http+`}]`)[0]
	}
	f.OnUpdates([]datastore.Update{{Type: datastore.Added, Key: api.Key{Kind: "GlobalNetworkPolicy", Name: "web"},
		Object: policy(`, http: {methods: [GET], paths: [{prefix: /public/}]}`)}})
	apply()
	if len(reg.List()) != 1 || reg.List()[0].Action != "failed closed" {
		t.Errorf("registry %+v, want the policy failed closed", reg.List())
	}
	if err := dial(w1, "10.65.0.2:80"); err == nil {
		t.Error("w1 reached w2 through an Allow rule whose HTTP match cannot be enforced")
	}

	f.OnUpdates([]datastore.Update{{Type: datastore.Modified, Key: api.Key{Kind: "GlobalNetworkPolicy", Name: "web"}, Object: policy("")}})
	apply()
	if len(reg.List()) != 0 {
		t.Errorf("registry %+v after a valid version", reg.List())
	}
	if err := dial(w1, "10.65.0.2:80"); err != nil {
		t.Errorf("w1 cannot reach w2 through the same rule without the HTTP match: %v", err)
	}
}
