package kubernetes_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/k8sconv"
	"github.com/servalnet/serval/internal/kubetest"
)

// TestNodeWriteBack: a Node written through the store (as serval-node
// registers itself) lands on its Kubernetes Node as annotations, and what
// cannot land there is refused with the reason.
func TestNodeWriteBack(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	s, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := k8s.NewForConfigOrDie(c.RESTConfig())
	name := "writeback-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000"), ".", ""))
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{"kubernetes.io/hostname": name},
		Annotations: map[string]string{"other.example/keep": "yes"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	key := api.Key{Kind: "Node", Name: name}

	r, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	n := r.(*api.Node)
	asn := api.ASNumberFromString("64512")
	n.Spec.BGP = &api.NodeBGPSpec{IPv4Address: "192.0.2.11/24", IPv6Address: "2001:db8::11/64", ASNumber: &asn}
	n.Spec.IPv4VXLANTunnelAddr = "10.65.0.1"
	n.Labels["rack"] = "r1"
	out, err := s.Update(ctx, n)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	kn, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"other.example/keep":                      "yes",
		k8sconv.AnnotationNodeIPv4Address:         "192.0.2.11/24",
		k8sconv.AnnotationNodeIPv6Address:         "2001:db8::11/64",
		k8sconv.AnnotationNodeASNumber:            "64512",
		k8sconv.AnnotationNodeIPv4VXLANTunnelAddr: "10.65.0.1",
		k8sconv.AnnotationNodeLabels:              `{"rack":"r1"}`,
	}
	if !maps.Equal(kn.Annotations, want) {
		t.Errorf("Kubernetes Node annotations after Update:\n got %v\nwant %v", kn.Annotations, want)
	}
	if got := out.GetObjectMeta().ResourceVersion; got != kn.ResourceVersion {
		t.Errorf("Update returned resourceVersion %s, the Kubernetes Node is at %s", got, kn.ResourceVersion)
	}
	if b := out.(*api.Node).Spec.BGP; b == nil || b.IPv4Address != "192.0.2.11/24" || out.GetObjectMeta().Labels["rack"] != "r1" {
		t.Errorf("Update returned %+v", out)
	}

	// Removing a field removes its annotation.
	back := out.(*api.Node)
	back.Spec.IPv4VXLANTunnelAddr = ""
	if _, err := s.Update(ctx, back); err != nil {
		t.Fatalf("Update removing the tunnel address: %v", err)
	}
	if kn, _ = cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); kn.Annotations[k8sconv.AnnotationNodeIPv4VXLANTunnelAddr] != "" {
		t.Errorf("tunnel address annotation left: %v", kn.Annotations)
	}

	for _, tc := range []struct {
		name string
		do   func() error
		is   error
		has  string
	}{
		{"stale resourceVersion", func() error { _, err := s.Update(ctx, back); return err },
			datastore.ErrConflict, "is at resourceVersion"},
		{"a Kubernetes label", func() error {
			n := fresh(t, s, key)
			n.Labels["kubernetes.io/hostname"] = "other"
			_, err := s.Update(ctx, n)
			return err
		}, nil, `metadata.labels["kubernetes.io/hostname"]: the label is the Kubernetes Node's`},
		{"Create of an existing one", func() error { _, err := s.Create(ctx, fresh(t, s, key)); return err },
			datastore.ErrAlreadyExists, "stands for it"},
		{"Create without a Kubernetes Node", func() error {
			_, err := s.Create(ctx, &api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: name + "-none"}})
			return err
		}, datastore.ErrNotFound, `there is no Kubernetes Node "` + name + `-none"`},
		{"Delete", func() error { _, err := s.Delete(ctx, key, ""); return err },
			kubernetes.ErrDerived, "change the Kubernetes Node instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.has) {
				t.Errorf("error %v, want %v with %q", err, tc.is, tc.has)
			}
		})
	}
}

// fresh reads a Node again.
func fresh(t *testing.T, s datastore.Interface, key api.Key) *api.Node {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*api.Node)
}
