package ipam_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/crd"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubetest"
)

// TestConcurrentProcessesKubernetes is TestConcurrentProcesses on the
// Kubernetes datastore: the blocks' compare-and-swap is the API server's
// resourceVersion check.
func TestConcurrentProcessesKubernetes(t *testing.T) {
	testConcurrentProcesses(t, 5*time.Minute, startKubeCluster)
}

// startKubeCluster uses the package's shared API server, with Serval's
// CRDs installed and emptied of the kinds IPAM writes.
func startKubeCluster(t *testing.T, ctx context.Context, cidr string, hosts ...string) (backend, datastore.Interface) {
	t.Helper()
	c := kubetest.Shared(t)
	installCRDs(t, ctx, c)
	ds, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	for _, kind := range []string{"IPAMBlock", "BlockAffinity", "IPAMHandle", "IPPool"} {
		res, err := ds.List(ctx, datastore.ListOptions{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Items {
			if _, err := ds.Delete(ctx, api.KeyOf(r), ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				t.Fatal(err)
			}
		}
	}
	populate(t, ctx, ds, cidr)
	// Nodes are derived from Kubernetes Nodes, as in a cluster.
	cs := k8s.NewForConfigOrDie(c.RESTConfig())
	for _, h := range hosts {
		if err := cs.CoreV1().Nodes().Delete(ctx, h, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), h, metav1.DeleteOptions{}) })
	}
	b := backend{
		env:  []string{datastore.EnvType + "=" + datastore.TypeKubernetes, "KUBECONFIG=" + c.Kubeconfig},
		args: []string{"--datastore-type", datastore.TypeKubernetes, "--kubeconfig", c.Kubeconfig},
	}
	return b, ds
}

// installCRDs installs the CRD of every Serval kind and waits until the
// API server serves them.
func installCRDs(t *testing.T, ctx context.Context, c *kubetest.Cluster) {
	t.Helper()
	dc := dynamic.NewForConfigOrDie(c.RESTConfig())
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, info := range api.Kinds() {
		def, err := crd.For(info)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Resource(crds).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating the CRD of %s: %v", info.Kind, err)
		}
		for {
			if _, err := dc.Resource(crd.GVR(info)).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
				break
			} else if ctx.Err() != nil {
				t.Fatalf("the CRD of %s is not served: %v", info.Kind, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
