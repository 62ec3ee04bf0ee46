package runner

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/k8sconv"
	"github.com/servalnet/serval/internal/synthload"
)

// The pods of the kubernetes load derive the endpoints the etcd load
// writes: same node, labels, address; the interface the agent's links
// are created with.
func TestKubePodIsTheEtcdLoadsEndpoint(t *testing.T) {
	for _, tc := range []struct {
		i    int
		node string
	}{{0, "benchnode"}, {249, "benchnode"}, {70000, "host0"}, {99999, "host499"}} {
		want := synthload.Endpoint(tc.i, tc.node)
		got, ok, err := k8sconv.PodToWorkloadEndpoint(kubePod(tc.i, tc.node))
		if err != nil || !ok {
			t.Fatalf("pod %d: ok=%v err=%v", tc.i, ok, err)
		}
		if got.Spec.Node != tc.node || got.Namespace != want.Namespace {
			t.Errorf("pod %d: node %s namespace %s, want %s %s", tc.i, got.Spec.Node, got.Namespace, tc.node, want.Namespace)
		}
		if !slices.Equal(got.Spec.IPNetworks, want.Spec.IPNetworks) {
			t.Errorf("pod %d: addresses %v, want %v", tc.i, got.Spec.IPNetworks, want.Spec.IPNetworks)
		}
		for k, v := range want.Labels {
			if got.Labels[k] != v {
				t.Errorf("pod %d: label %s=%q, want %q", tc.i, k, got.Labels[k], v)
			}
		}
		if iface := localIface(agentLoadSpec{Datastore: dsKubernetes}, tc.i); got.Spec.InterfaceName != iface {
			t.Errorf("pod %d: interface %s, links made as %s", tc.i, got.Spec.InterfaceName, iface)
		}
	}
}

// The propagation NetworkPolicy converts, selects the bench pods and
// opens its port from them.
func TestKubePropPolicy(t *testing.T) {
	p, err := k8sconv.NetworkPolicyToPolicy(kubePropPolicy(3, 20003))
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != propNamespace || !strings.Contains(p.Spec.Selector, "bench == 'prop'") {
		t.Errorf("namespace %s selector %q", p.Namespace, p.Spec.Selector)
	}
	if len(p.Spec.Ingress) != 1 || len(p.Spec.Ingress[0].Destination.Ports) != 1 || p.Spec.Ingress[0].Destination.Ports[0].MinPort != 20003 {
		t.Errorf("ingress %+v, want one rule to port 20003", p.Spec.Ingress)
	}
}

func TestTookOf(t *testing.T) {
	for _, tc := range []struct {
		line string
		want time.Duration
		ok   bool
	}{
		{`level=INFO msg="datastore listed" kinds=15 changes=12251 took=1.437s`, 1437 * time.Millisecond, true},
		{`msg="datastore listed" kinds=1 changes=0 took=4ms extra=1`, 4 * time.Millisecond, true},
		{`msg="datastore listed" kinds=1`, 0, false},
		{`took=soon`, 0, false},
	} {
		if n := changesOf(tc.line); tc.ok && strings.Contains(tc.line, "changes=12251") != (n == 12251) {
			t.Errorf("changesOf(%q) = %d", tc.line, n)
		}
		got, ok := tookOf(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("tookOf(%q) = %v, %v; want %v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
