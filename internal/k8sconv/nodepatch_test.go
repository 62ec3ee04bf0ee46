package k8sconv

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/api"
)

// TestNodeMergePatch applies the patch as the API server would and checks
// that the patched Kubernetes Node stands for the Node asked for.
func TestNodeMergePatch(t *testing.T) {
	base := func() *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: "node-1", ResourceVersion: "41",
			Labels: map[string]string{"kubernetes.io/hostname": "node-1"},
			Annotations: map[string]string{
				AnnotationNodeIPv4Address:         "192.0.2.11/24",
				AnnotationNodeIPv4VXLANTunnelAddr: "10.65.0.2",
				AnnotationNodeLabels:              `{"rack":"r1"}`,
				"other.example/keep":              "yes",
			},
		}}
	}
	asn := api.ASNumberFromString("64512")
	for _, tc := range []struct {
		name   string
		edit   func(n *api.Node)
		patch  string // the annotations part, when checked
		errHas string
	}{
		{name: "unchanged: nothing to write", edit: func(*api.Node) {}, patch: `{}`},
		{name: "addresses, AS and a tunnel address set, one removed", edit: func(n *api.Node) {
			n.Spec.BGP.IPv4Address = "192.0.2.12/24"
			n.Spec.BGP.IPv6Address = "2001:db8::12/64"
			n.Spec.BGP.ASNumber = &asn
			n.Spec.IPv4VXLANTunnelAddr = ""
			n.Spec.VXLANTunnelMACAddr = "66:1c:2d:3e:4f:50"
		}, patch: `{"projectcalico.org/ASNumber":"64512","projectcalico.org/IPv4Address":"192.0.2.12/24",` +
			`"projectcalico.org/IPv4VXLANTunnelAddr":null,"projectcalico.org/IPv6Address":"2001:db8::12/64",` +
			`"projectcalico.org/VXLANTunnelMACAddr":"66:1c:2d:3e:4f:50"}`},
		{name: "own labels go to the labels annotation", edit: func(n *api.Node) {
			delete(n.Labels, "rack")
			n.Labels["bgp-peer"] = "tor-1"
		}, patch: `{"projectcalico.org/labels":"{\"bgp-peer\":\"tor-1\"}"}`},
		{name: "the last own label removes the annotation", edit: func(n *api.Node) {
			delete(n.Labels, "rack")
		}, patch: `{"projectcalico.org/labels":null}`},
		{name: "a Kubernetes label cannot be changed here", edit: func(n *api.Node) {
			n.Labels["kubernetes.io/hostname"] = "other"
		}, errHas: `metadata.labels["kubernetes.io/hostname"]: the label is the Kubernetes Node's ("node-1")`},
		{name: "nor removed", edit: func(n *api.Node) {
			delete(n.Labels, "kubernetes.io/hostname")
		}, errHas: `metadata.labels["kubernetes.io/hostname"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kn := base()
			n, err := NodeToNode(kn)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(n)
			patch, err := NodeMergePatch(kn, n)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want one with %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var p struct {
				Metadata struct {
					ResourceVersion string          `json:"resourceVersion"`
					Annotations     json.RawMessage `json:"annotations"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(patch, &p); err != nil {
				t.Fatal(err)
			}
			if p.Metadata.ResourceVersion != "41" {
				t.Errorf("patch precondition resourceVersion %q, want 41", p.Metadata.ResourceVersion)
			}
			if got := string(p.Metadata.Annotations); got != tc.patch {
				t.Errorf("annotations patch\n got %s\nwant %s", got, tc.patch)
			}
			orig, _ := json.Marshal(kn)
			merged, err := jsonpatch.MergePatch(orig, patch)
			if err != nil {
				t.Fatal(err)
			}
			var after corev1.Node
			if err := json.Unmarshal(merged, &after); err != nil {
				t.Fatal(err)
			}
			if after.Annotations["other.example/keep"] != "yes" {
				t.Errorf("an annotation not Serval's was touched: %v", after.Annotations)
			}
			back, err := NodeToNode(&after)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Labels, n.Labels) {
				t.Errorf("labels after the patch %v, want %v", back.Labels, n.Labels)
			}
			// Addresses are derived from the BGP ones: compare the rest.
			back.Spec.Addresses, n.Spec.Addresses = nil, nil
			if !reflect.DeepEqual(back.Spec, n.Spec) {
				t.Errorf("spec after the patch\n got %+v\nwant %+v", back.Spec, n.Spec)
			}
		})
	}
}
