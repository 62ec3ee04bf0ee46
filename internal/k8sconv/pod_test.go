package k8sconv

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/cni"
)

func testPod(mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:           "node-1",
			ServiceAccountName: "frontend",
			Containers:         []corev1.Container{{Name: "c"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.65.0.5"}, {IP: "fd00:65::5"}}},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

// The endpoint of testPod with its status addresses; cases add to it.
const wepHead = `
kind: WorkloadEndpoint
apiVersion: projectcalico.org/v3
metadata:
  name: node--1-k8s-web--0-eth0
  namespace: shop
  labels:
    app: web
    projectcalico.org/namespace: shop
    projectcalico.org/orchestrator: k8s
    projectcalico.org/serviceaccount: frontend
spec:
  orchestrator: k8s
  node: node-1
  pod: web-0
  endpoint: eth0
  serviceAccountName: frontend
  profiles: [kns.shop, ksa.shop.frontend]
  interfaceName: calia4fc3c48bd8
`

func TestPodToWorkloadEndpoint(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		conv Converter
		want string // "" when the pod has no endpoint
		err  string
	}{
		{name: "dual-stack from status", pod: testPod(nil),
			want: wepHead + "  ipNetworks: [10.65.0.5/32, fd00:65::5/128]\n"},
		{name: "status.podIP only", pod: testPod(func(p *corev1.Pod) { p.Status.PodIPs, p.Status.PodIP = nil, "10.65.0.5" }),
			want: wepHead + "  ipNetworks: [10.65.0.5/32]\n"},
		{name: "the CNI plugin's podIPs annotation, before the kubelet writes the status", pod: testPod(func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{Phase: corev1.PodPending}
			p.Annotations = map[string]string{AnnotationPodIPs: "10.65.0.7/32,fd00:65::7/128", AnnotationPodIP: "10.65.0.7/32"}
		}), want: wepHead + "  ipNetworks: [10.65.0.7/32, fd00:65::7/128]\n"},
		{name: "the status wins over the annotations, as in Calico", pod: testPod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{AnnotationPodIPs: "10.65.0.7", AnnotationPodIP: "10.65.0.7"}
		}), want: wepHead + "  ipNetworks: [10.65.0.5/32, fd00:65::5/128]\n"},
		{name: "podIP annotation only", pod: testPod(func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{}
			p.Annotations = map[string]string{AnnotationPodIP: "fd00:65::8"}
		}), want: wepHead + "  ipNetworks: [fd00:65::8/128]\n"},
		{name: "no addresses yet", pod: testPod(func(p *corev1.Pod) { p.Status = corev1.PodStatus{} }), want: wepHead},
		{name: "succeeded: no addresses", pod: testPod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), want: wepHead},
		{name: "failed: no addresses", pod: testPod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }), want: wepHead},
		{name: "being deleted, addresses released by the CNI plugin", pod: testPod(func(p *corev1.Pod) {
			p.DeletionTimestamp = &deleted
			p.Annotations = map[string]string{AnnotationPodIP: "", AnnotationPodIPs: ""}
		}), want: wepHead},
		{name: "being deleted, addresses still held", pod: testPod(func(p *corev1.Pod) {
			p.DeletionTimestamp = &deleted
			p.Annotations = map[string]string{AnnotationPodIP: "10.65.0.5"}
		}), want: wepHead + "  ipNetworks: [10.65.0.5/32, fd00:65::5/128]\n"},
		{name: "host network: no endpoint", pod: testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true })},
		{name: "not scheduled: no endpoint", pod: testPod(func(p *corev1.Pod) { p.Spec.NodeName = "" })},
		{name: "no service account", pod: testPod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = ""; p.Status = corev1.PodStatus{} }), want: `
kind: WorkloadEndpoint
apiVersion: projectcalico.org/v3
metadata:
  name: node--1-k8s-web--0-eth0
  namespace: shop
  labels: {app: web, projectcalico.org/namespace: shop, projectcalico.org/orchestrator: k8s}
spec: {orchestrator: k8s, node: node-1, pod: web-0, endpoint: eth0, profiles: [kns.shop], interfaceName: calia4fc3c48bd8}
`},
		{name: "a service account too long for a label value", pod: testPod(func(p *corev1.Pod) {
			p.Spec.ServiceAccountName = "a-very-long-service-account-name-that-is-sixty-three-characters"
			p.Status = corev1.PodStatus{}
		}), want: `
kind: WorkloadEndpoint
apiVersion: projectcalico.org/v3
metadata:
  name: node--1-k8s-web--0-eth0
  namespace: shop
  labels: {app: web, projectcalico.org/namespace: shop, projectcalico.org/orchestrator: k8s}
spec:
  orchestrator: k8s
  node: node-1
  pod: web-0
  endpoint: eth0
  serviceAccountName: a-very-long-service-account-name-that-is-sixty-three-characters
  profiles: [kns.shop, ksa.shop.a-very-long-service-account-name-that-is-sixty-three-characters]
  interfaceName: calia4fc3c48bd8
`},
		{name: "the pod's own labels cannot override Calico's", pod: testPod(func(p *corev1.Pod) {
			p.Labels = map[string]string{"app": "web", LabelNamespace: "other", LabelOrchestrator: "cni", LabelServiceAccount: "admin"}
			p.Status = corev1.PodStatus{}
		}), want: wepHead},
		{name: "named ports of containers and init containers, host ports", pod: testPod(func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{}
			p.Spec.Containers = []corev1.Container{{Name: "a", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080},
				{ContainerPort: 9090},                                     // no name, no host port: left out
				{ContainerPort: 8443, HostPort: 443, HostIP: "192.0.2.1"}, // host port
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			}}, {Name: "b", Ports: []corev1.ContainerPort{{Name: "assoc", ContainerPort: 3868, Protocol: corev1.ProtocolSCTP}}}}
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Ports: []corev1.ContainerPort{{Name: "init-metrics", ContainerPort: 9100, Protocol: corev1.ProtocolTCP}}}}
		}), want: wepHead + `  ports:
  - {name: http, protocol: TCP, port: 8080}
  - {protocol: TCP, port: 8443, hostPort: 443, hostIP: 192.0.2.1}
  - {name: dns, protocol: UDP, port: 53}
  - {name: assoc, protocol: SCTP, port: 3868}
  - {name: init-metrics, protocol: TCP, port: 9100}
`},
		{name: "container ID, MAC, floating IPs, allowed source prefixes", pod: testPod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{
				AnnotationContainerID:           "c0ffee",
				AnnotationHwAddr:                "1C:0C:0A:C0:FF:EE",
				AnnotationFloatingIPs:           `["198.51.100.9", "2001:db8::9"]`,
				AnnotationAllowedSourcePrefixes: `["203.0.113.7/24", "2001:db8:1::/48"]`,
			}
		}), want: wepHead + `  containerID: c0ffee
  mac: "1c:0c:0a:c0:ff:ee"
  ipNetworks: [10.65.0.5/32, fd00:65::5/128]
  ipNATs:
  - {internalIP: 10.65.0.5, externalIP: 198.51.100.9}
  - {internalIP: "fd00:65::5", externalIP: "2001:db8::9"}
  allowSpoofedSourcePrefixes: [203.0.113.0/24, "2001:db8:1::/48"]
`},
		{name: "interface prefix of the installation", conv: Converter{InterfacePrefix: "tap"},
			pod:  testPod(func(p *corev1.Pod) { p.Status = corev1.PodStatus{} }),
			want: wepHead[:len(wepHead)-len("calia4fc3c48bd8\n")] + "tapa4fc3c48bd8\n"},
		{name: "bad address", pod: testPod(func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{}
			p.Annotations = map[string]string{AnnotationPodIPs: "10.65.0.5,nope"}
		}),
			err: `pod shop/web-0: annotation cni.projectcalico.org/podIPs: "nope" is not an IP address`},
		{name: "bad status address", pod: testPod(func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "10.65.0.300"}} }),
			err: `pod shop/web-0: status.podIPs: "10.65.0.300" is not an IP address`},
		{name: "bad MAC", pod: testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationHwAddr: "zz"} }),
			err: `pod shop/web-0: annotation cni.projectcalico.org/hwAddr: "zz" is not a MAC address`},
		{name: "bad floating IPs", pod: testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationFloatingIPs: `198.51.100.9`} }),
			err: `pod shop/web-0: annotation cni.projectcalico.org/floatingIPs`},
		{name: "bad allowed source prefix", pod: testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationAllowedSourcePrefixes: `["x/8"]`} }),
			err: `pod shop/web-0: annotation cni.projectcalico.org/allowedSourcePrefixes: "x/8" is not a CIDR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ok, err := tc.conv.PodToWorkloadEndpoint(tc.pod)
			wantErr(t, err, tc.err)
			if tc.err != "" {
				if w != nil || ok {
					t.Errorf("an endpoint with the error: %v", w)
				}
				return
			}
			if ok != (tc.want != "") {
				t.Fatalf("ok = %v, want %v", ok, tc.want != "")
			}
			if ok {
				checkResource(t, w, tc.want)
			}
		})
	}
}

// TestPodEndpointMatchesCNI: the endpoint derived from a pod has the name
// and host veth the CNI plugin gives the attachment of that pod, so the
// agent finds the interface the plugin made.
func TestPodEndpointMatchesCNI(t *testing.T) {
	for _, prefix := range []string{"", "tap"} {
		conf := &cni.NetConf{InterfacePrefix: prefix}
		conf.Name = "k8s-pod-network"
		id := cni.NewIdentity(conf, "node-1", "c0ffee", "eth0", &cni.Args{PodNamespace: "shop", PodName: "web-0"})
		w, ok, err := Converter{InterfacePrefix: prefix}.PodToWorkloadEndpoint(testPod(nil))
		if err != nil || !ok {
			t.Fatalf("no endpoint: %v", err)
		}
		if w.Name != id.EndpointName || w.Spec.InterfaceName != id.HostVeth {
			t.Errorf("prefix %q: endpoint %s on %s, the CNI plugin's is %s on %s", prefix, w.Name, w.Spec.InterfaceName, id.EndpointName, id.HostVeth)
		}
	}
}
