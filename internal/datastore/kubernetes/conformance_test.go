package kubernetes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/crd"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdObject is the CustomResourceDefinition of a kind, as package crd
// makes it, for the dynamic client.
func crdObject(t *testing.T, info api.KindInfo) *unstructured.Unstructured {
	t.Helper()
	def, err := crd.For(info)
	if err != nil {
		t.Fatalf("CRD of %s: %v", info.Kind, err)
	}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatalf("CRD of %s: %v", info.Kind, err)
	}
	return u
}

// installCRDs creates the CRDs of kinds and waits until the API server
// serves them.
func installCRDs(t *testing.T, c *kubetest.Cluster, kinds ...string) {
	t.Helper()
	dc := dynamic.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, k := range kinds {
		info, ok := api.LookupKind(k)
		if !ok {
			t.Fatalf("kind %s not registered", k)
		}
		_, err := dc.Resource(crdGVR).Create(ctx, crdObject(t, info), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating the CRD of %s: %v", k, err)
		}
		gvr := schema.GroupVersionResource{Group: api.Group, Version: api.Version, Resource: info.Plural}
		for {
			_, err := dc.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("the CRD of %s is not served: %v", k, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// suiteNamespaces are the namespaces dstest writes in: Kubernetes keeps
// namespaced objects only in namespaces that exist.
var suiteNamespaces = []string{"ns1", "ns2", "ns1x", "a", "a-b", "empty", "default", "kube-system"}

func createNamespaces(t *testing.T, c *kubetest.Cluster, names ...string) {
	t.Helper()
	cs := k8s.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range names {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating namespace %s: %v", n, err)
		}
	}
}

// emptyKinds deletes every object of kinds, so that a subtest starts from
// an empty datastore.
func emptyKinds(t *testing.T, s datastore.Interface, kinds ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, k := range kinds {
		res, err := s.List(ctx, datastore.ListOptions{Kind: k})
		if err != nil {
			t.Fatalf("emptying %s: %v", k, err)
		}
		for _, r := range res.Items {
			if _, err := s.Delete(ctx, api.KeyOf(r), ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				t.Fatalf("emptying %s: %v", k, err)
			}
		}
	}
}

// compact discards the history before rev as a real cluster loses it:
// etcd compacts its revisions, and the API server's watch cache, which
// would otherwise still serve them, starts afresh (the API server resets
// a custom resource's storage, watch cache included, when its CRD's spec
// changes; a restarted API server does the same). It returns once a watch
// from before rev is answered "410 Gone".
func compact(t *testing.T, c *kubetest.Cluster, rev int64, kinds ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{c.EtcdURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("connecting to the cluster's etcd: %v", err)
	}
	defer ec.Close()
	if _, err := ec.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compacting etcd at %d: %v", rev, err)
	}
	dc := dynamic.NewForConfigOrDie(c.RESTConfig())
	for _, k := range kinds {
		info, _ := api.LookupKind(k)
		patch := fmt.Sprintf(`[{"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/description","value":"history compacted at %d"}]`, rev)
		if _, err := dc.Resource(crdGVR).Patch(ctx, info.Plural+"."+api.Group, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("changing the CRD of %s: %v", k, err)
		}
		gvr := schema.GroupVersionResource{Group: api.Group, Version: api.Version, Resource: info.Plural}
		for {
			if ctx.Err() != nil {
				t.Fatalf("the API server still serves the history of %s before %d", k, rev)
			}
			if watchGone(ctx, dc, gvr, rev-1) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// watchGone reports whether a watch from rev is refused as too old.
func watchGone(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, rev int64) bool {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	w, err := dc.Resource(gvr).Watch(wctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(rev, 10)})
	if err != nil {
		return apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			return false
		}
		if st, isStatus := ev.Object.(*metav1.Status); isStatus {
			return st.Code == http.StatusGone
		}
		return false
	case <-wctx.Done():
		return false
	}
}

func TestConformance(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c, dstest.ThingKind, dstest.NSThingKind)
	createNamespaces(t, c, suiteNamespaces...)
	dstest.Run(t, dstest.Harness{
		New: func(t *testing.T) datastore.Interface {
			s, err := kubernetes.New(c.RESTConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			emptyKinds(t, s, dstest.ThingKind, dstest.NSThingKind)
			return s
		},
		Compact: func(t *testing.T, s datastore.Interface, rev int64) {
			compact(t, c, rev, dstest.ThingKind, dstest.NSThingKind)
		},
		// A Kubernetes watch event carries the new state only.
		WatchWithoutPrevious: true,
	})
}
