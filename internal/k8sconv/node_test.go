package k8sconv

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeToNode(t *testing.T) {
	const wgKey = "jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY="
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want string
		err  string
	}{
		{name: "BGP, AS, route reflector, tunnels, addresses, pod CIDRs", node: &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: "node-1", UID: "u1", ResourceVersion: "9",
				Labels: map[string]string{"kubernetes.io/hostname": "node-1", "rack": "r1"},
				Annotations: map[string]string{
					AnnotationNodeIPv4Address:          "192.0.2.11/24",
					AnnotationNodeIPv6Address:          "2001:db8::11/64",
					AnnotationNodeASNumber:             "64512",
					AnnotationNodeRRClusterID:          "224.0.0.1",
					AnnotationNodeIPIPTunnelAddr:       "10.65.0.1",
					AnnotationNodeIPv4VXLANTunnelAddr:  "10.65.0.2",
					AnnotationNodeVXLANTunnelMACAddr:   "66:1c:2d:3e:4f:50",
					AnnotationNodeIPv6VXLANTunnelAddr:  "fd00:65::2",
					AnnotationNodeVXLANTunnelMACAddrV6: "66:1c:2d:3e:4f:51",
					AnnotationNodeWireguardIPv4Addr:    "10.65.0.3",
					AnnotationNodeWireguardPublicKey:   wgKey,
					AnnotationNodeLabels:               `{"rack": "overridden", "bgp-peer": "tor-1"}`,
				},
			},
			Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "192.0.2.11"},
				{Type: corev1.NodeExternalIP, Address: "2001:db8:ff::11"},
				{Type: corev1.NodeHostName, Address: "node-1"},
			}},
		}, want: `
kind: Node
apiVersion: projectcalico.org/v3
metadata:
  name: node-1
  uid: u1
  resourceVersion: "9"
  labels: {kubernetes.io/hostname: node-1, rack: r1, bgp-peer: tor-1}
spec:
  bgp:
    asNumber: 64512
    ipv4Address: 192.0.2.11/24
    ipv6Address: 2001:db8::11/64
    ipv4IPIPTunnelAddr: 10.65.0.1
    routeReflectorClusterID: 224.0.0.1
  addresses:
  - {address: 192.0.2.11/24, type: CalicoNodeIP}
  - {address: 2001:db8::11/64, type: CalicoNodeIP}
  - {address: 192.0.2.11, type: InternalIP}
  - {address: 2001:db8:ff::11, type: ExternalIP}
  ipv4VXLANTunnelAddr: 10.65.0.2
  vxlanTunnelMACAddr: 66:1c:2d:3e:4f:50
  ipv6VXLANTunnelAddr: fd00:65::2
  vxlanTunnelMACAddrV6: 66:1c:2d:3e:4f:51
  orchRefs: [{nodeName: node-1, orchestrator: k8s}]
  wireguard: {interfaceIPv4Address: 10.65.0.3}
status:
  wireguardPublicKey: ` + wgKey + `
  podCIDRs: [10.244.1.0/24, fd00:244:1::/64]
`},
		{name: "a plain node", node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}}, want: `
kind: Node
apiVersion: projectcalico.org/v3
metadata: {name: node-2}
spec: {orchRefs: [{nodeName: node-2, orchestrator: k8s}]}
`},
		{name: "IPv6 only BGP, dotted AS", node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-3", Annotations: map[string]string{
			AnnotationNodeIPv6Address: "2001:db8::13/64", AnnotationNodeASNumber: "1.10",
		}}}, want: `
kind: Node
apiVersion: projectcalico.org/v3
metadata: {name: node-3}
spec:
  bgp: {asNumber: 65546, ipv6Address: 2001:db8::13/64}
  addresses: [{address: 2001:db8::13/64, type: CalicoNodeIP}]
  orchRefs: [{nodeName: node-3, orchestrator: k8s}]
`},
		{name: "bad annotations are left out and named", node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-4", Annotations: map[string]string{
			AnnotationNodeIPv4Address: "2001:db8::14/64", // not IPv4
			AnnotationNodeIPv6Address: "2001:db8::14/64",
			AnnotationNodeASNumber:    "sixty",
			AnnotationNodeRRClusterID: "not-an-ip",
		}}}, want: `
kind: Node
apiVersion: projectcalico.org/v3
metadata: {name: node-4}
spec:
  bgp: {ipv6Address: 2001:db8::14/64}
  addresses: [{address: 2001:db8::14/64, type: CalicoNodeIP}]
  orchRefs: [{nodeName: node-4, orchestrator: k8s}]
`, err: `node node-4: annotation projectcalico.org/IPv4Address: "2001:db8::14/64" is not valid`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NodeToNode(tc.node)
			wantErr(t, err, tc.err)
			checkResource(t, n, tc.want)
		})
	}
	// Every bad annotation is named, not only the first.
	_, err := NodeToNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-5", Annotations: map[string]string{
		AnnotationNodeASNumber: "sixty", AnnotationNodeRRClusterID: "not-an-ip", AnnotationNodeLabels: "{",
	}}, Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.0.0/33"}}})
	for _, want := range []string{
		`node node-5: annotation projectcalico.org/ASNumber: "sixty"`,
		`node node-5: annotation projectcalico.org/RouteReflectorClusterID: "not-an-ip"`,
		`node node-5: annotation projectcalico.org/labels: "{"`,
		`node node-5: spec.podCIDRs: "10.244.0.0/33"`,
	} {
		wantErr(t, err, want)
	}
}
