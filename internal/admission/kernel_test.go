package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// perInterfaceSysctls are the settings the dataplane writes for a workload
// interface, for every interface directory of a namespace (all, default,
// lo, and each link).
const perInterfaceSysctls = `for f in /proc/sys/net/ipv4/conf/*/proxy_arp /proc/sys/net/ipv4/neigh/*/proxy_delay /proc/sys/net/ipv6/conf/*/accept_ra; do echo "$f=$(cat $f)"; done`

// TestKernelTraversalNameTouchesNothing runs the agent's path — admission,
// calculation graph, the real dataplane in a throwaway network namespace —
// with a WorkloadEndpoint named "cali/../all" as if written to etcd behind
// servalctl's back, and, as defence in depth, hands the same endpoint to
// the dataplane directly. No per-interface setting of the namespace may
// change except those of the valid workload's own interface.
func TestKernelTraversalNameTouchesNothing(t *testing.T) {
	needRoot(t)
	_, h, ns := newNS(t, "trav")
	// The valid workload's interface, and settings the dataplane would
	// change if it wrote them anywhere else.
	ns("ip", "link", "add", "cali1", "type", "veth", "peer", "name", "w1")
	ns("ip", "link", "set", "cali1", "up")
	ns("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "w2")
	ns("sysctl", "-q", "-w", "net.ipv4.conf.all.proxy_arp=0", "net.ipv4.conf.default.proxy_arp=0", "net.ipv4.conf.eth0.proxy_arp=0",
		"net.ipv6.conf.all.accept_ra=1", "net.ipv6.conf.default.accept_ra=1", "net.ipv4.neigh.eth0.proxy_delay=80")
	before := ns("sh", "-c", perInterfaceSysctls)

	dp := kernelDataplane(t, h)
	reg := NewRegistry()
	f := NewFilter(calc.New(host, dp, nil), reg, nil)
	f.OnUpdates(added(objects(t, base+`
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-evil-eth0, namespace: default}
spec: {node: h, orchestrator: cni, workload: evil, endpoint: eth0, interfaceName: cali/../all, ipNetworks: [10.65.0.9/32]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-dots-eth0, namespace: default}
spec: {node: h, orchestrator: cni, workload: dots, endpoint: eth0, interfaceName: "cali/../default", ipNetworks: [10.65.0.10/32]}`)...))
	f.OnStatus(datastore.InSync)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dp.Apply(ctx); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if n := len(reg.List()); n != 2 {
		t.Errorf("%d objects reported, want the 2 bad endpoints: %+v", n, reg.List())
	}
	if out := ns("nft", "list", "ruleset"); strings.Contains(out, "cali/../") {
		t.Errorf("a rule names a rejected endpoint's interface:\n%s", out)
	}
	// Behind admission's back: straight into the dataplane, which must
	// not turn the name into a /proc/sys path (an nftables match on the
	// name is only a string and stays within Serval's table).

	dp.OnWorkloadEndpointUpdate(hoststate.WorkloadEndpoint{ID: "default/direct", InterfaceName: "cali/../all"})
	_ = dp.Apply(ctx) // a route to a device that cannot exist may fail; the settings must not be written

	after := ns("sh", "-c", perInterfaceSysctls)
	was := map[string]string{}
	for _, l := range strings.Fields(before) {
		k, v, _ := strings.Cut(l, "=")
		was[k] = v
	}
	changed := 0
	for _, l := range strings.Fields(after) {
		k, v, _ := strings.Cut(l, "=")
		if was[k] == v {
			continue
		}
		changed++
		if !strings.Contains(k, "/cali1/") {
			t.Errorf("%s changed from %s to %s", k, was[k], v)
		}
	}
	if changed == 0 {
		t.Errorf("the valid workload's interface was not configured either:\n%s", after)
	}
}
