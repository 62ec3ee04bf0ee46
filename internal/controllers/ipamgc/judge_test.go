package ipamgc

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/ipam"
)

func TestPodOf(t *testing.T) {
	ep := func(node, orch, name string) string { return api.WorkloadEndpointName(node, orch, name, "eth0") }
	tests := []struct {
		name  string
		attrs map[string]string
		want  podRef
		ok    bool
	}{
		{"kubernetes pod", map[string]string{ipam.AttrNode: "n-1", ipam.AttrNamespace: "ns", ipam.AttrWorkload: "web-1",
			ipam.AttrEndpoint: ep("n-1", "k8s", "web-1")}, podRef{Namespace: "ns", Name: "web-1", Node: "n-1"}, true},
		{"with UID", map[string]string{ipam.AttrNode: "n1", ipam.AttrNamespace: "ns", ipam.AttrWorkload: "web",
			ipam.AttrEndpoint: ep("n1", "k8s", "web"), ipam.AttrPodUID: "u1"}, podRef{Namespace: "ns", Name: "web", Node: "n1", UID: "u1"}, true},
		{"second interface", map[string]string{ipam.AttrNode: "n1", ipam.AttrNamespace: "ns", ipam.AttrWorkload: "web",
			ipam.AttrEndpoint: api.WorkloadEndpointName("n1", "k8s", "web", "net1")}, podRef{Namespace: "ns", Name: "web", Node: "n1"}, true},
		{"plain CNI workload", map[string]string{ipam.AttrNode: "n1", ipam.AttrNamespace: "default", ipam.AttrWorkload: "c1",
			ipam.AttrEndpoint: ep("n1", "cni", "c1")}, podRef{}, false},
		{"endpoint of another pod", map[string]string{ipam.AttrNode: "n1", ipam.AttrNamespace: "ns", ipam.AttrWorkload: "web",
			ipam.AttrEndpoint: ep("n1", "k8s", "web-2")}, podRef{}, false},
		{"no endpoint", map[string]string{ipam.AttrNode: "n1", ipam.AttrNamespace: "ns", ipam.AttrWorkload: "web"}, podRef{}, false},
		{"tunnel address", map[string]string{ipam.AttrNode: "n1"}, podRef{}, false},
		{"no attributes", nil, podRef{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := podOf(tt.attrs)
			if ok != tt.ok || got != tt.want {
				t.Errorf("podOf = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	ip4, ip6 := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")
	ref := podRef{Namespace: "ns", Name: "web", Node: "n1"}
	withUID := ref
	withUID.UID = "u1"
	mk := func(node string, phase corev1.PodPhase, uid string, ips ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if uid != "" {
			p.UID = "u2"
		}
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		return p
	}
	tests := []struct {
		name       string
		ref        podRef
		ip         netip.Addr
		pod        *corev1.Pod
		wantLeaked bool
		wantReason string
	}{
		{"no pod", ref, ip4, nil, true, "pod gone"},
		{"running, lists it", ref, ip4, mk("n1", corev1.PodRunning, "", "10.0.0.5", "fd00::5"), false, "in use"},
		{"running, lists the IPv6 one", ref, ip6, mk("n1", corev1.PodRunning, "", "10.0.0.5", "fd00::5"), false, "in use"},
		{"pending, no addresses yet", ref, ip4, mk("n1", corev1.PodPending, ""), false, "pod exists"},
		{"not yet scheduled", ref, ip4, mk("", corev1.PodPending, ""), false, "pod exists"},
		{"running, other addresses, same node (second interface?)", ref, ip4, mk("n1", corev1.PodRunning, "", "10.0.0.9"), false, "pod exists"},
		{"succeeded", ref, ip4, mk("n1", corev1.PodSucceeded, "", "10.0.0.5"), true, "pod finished"},
		{"failed", ref, ip4, mk("n1", corev1.PodFailed, ""), true, "pod finished"},
		{"same name on another node, started", ref, ip4, mk("n2", corev1.PodRunning, "", "10.0.0.9"), true, "pod on another node"},
		{"same name on another node, lists it", ref, ip4, mk("n2", corev1.PodRunning, "", "10.0.0.5"), false, "in use"},
		{"same name on another node, starting", ref, ip4, mk("n2", corev1.PodPending, ""), false, "pod exists"},
		{"recorded UID matches", withUID, ip4, mk("n1", corev1.PodRunning, "", "10.0.0.5"), false, "in use"},
		{"recorded UID differs", withUID, ip4, mk("n1", corev1.PodRunning, "other", "10.0.0.5"), true, "pod replaced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.ref, tt.ip, tt.pod)
			if v.Leaked != tt.wantLeaked || v.Reason != tt.wantReason {
				t.Errorf("judge = %+v, want leaked %v (%s)", v, tt.wantLeaked, tt.wantReason)
			}
		})
	}
}

func TestSlim(t *testing.T) {
	full := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1", ResourceVersion: "7",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"big": "x"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "img"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.5", PodIPs: []corev1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady}}},
	}
	obj, err := slim(full)
	if err != nil {
		t.Fatal(err)
	}
	p := obj.(*corev1.Pod)
	if p.Name != "web" || p.Namespace != "ns" || p.UID != "u1" || p.ResourceVersion != "7" || p.Spec.NodeName != "n1" ||
		p.Status.Phase != corev1.PodRunning || len(p.Status.PodIPs) != 2 || p.Status.PodIP != "10.0.0.5" {
		t.Errorf("slim dropped what the collector reads: %+v", p)
	}
	if p.Labels != nil || p.Annotations != nil || p.Spec.Containers != nil || p.Status.Conditions != nil {
		t.Errorf("slim kept what the collector does not read: %+v", p)
	}
	n, err := slim(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u", Labels: map[string]string{"a": "b"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Address: "192.0.2.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if node := n.(*corev1.Node); node.Name != "n1" || node.Labels != nil || node.Status.Addresses != nil {
		t.Errorf("slim node = %+v, want only its name and UID", node)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/web", Obj: full}
	if got, err := slim(tomb); err != nil || got != any(tomb) {
		t.Errorf("slim(tombstone) = %v, %v; want it unchanged", got, err)
	}
}
