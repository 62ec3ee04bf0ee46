package kubernetes_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubetest"
)

// installAllCRDs installs the CRD of every registered kind.
func installAllCRDs(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	var kinds []string
	for _, k := range api.Kinds() {
		if k.Kind == unservedKind {
			continue
		}
		kinds = append(kinds, k.Kind)
	}
	installCRDs(t, c, kinds...)
}

func newStore(t *testing.T, c *kubetest.Cluster) *kubernetes.Store {
	t.Helper()
	s, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// specJSON is a resource's JSON without its metadata.
func specJSON(t *testing.T, r api.Resource) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "metadata")
	out, _ := json.Marshal(m)
	return string(out)
}

// TestValidManifestsRoundTrip stores every valid example manifest of
// internal/api through the API server and reads it back: what Serval
// wrote is what it reads, field for field (a CRD schema that pruned a
// field, or a type the server changed, fails here), and it is what the
// in-memory backend keeps of the same manifest.
func TestValidManifestsRoundTrip(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	s := newStore(t, c)
	files, err := filepath.Glob("../../api/testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example manifests found: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := api.Load(f, data, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			r := d.Resource
			key := api.KeyOf(r)
			t.Run(filepath.Base(f)+"/"+key.String(), func(t *testing.T) {
				if key.Namespace != "" {
					createNamespaces(t, c, key.Namespace)
				}
				if _, err := s.Delete(ctx, key, ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
					t.Fatalf("removing what an earlier run left: %v", err)
				}
				created, err := s.Create(ctx, r)
				if err != nil {
					t.Fatalf("%s: Create: %v", d.Where(), err)
				}
				got, err := s.Get(ctx, key)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if a, b := jsonOf(t, created), jsonOf(t, got); a != b {
					t.Errorf("Get = %s\nwant  %s", b, a)
				}
				mem := datastore.NewMemory(nil)
				defer mem.Close()
				want, err := mem.Create(ctx, r)
				if err != nil {
					t.Fatalf("memory backend: %v", err)
				}
				if a, b := specJSON(t, want), specJSON(t, got); a != b {
					t.Errorf("stored through Kubernetes: %s\nin memory: %s", b, a)
				}
				if _, err := s.Delete(ctx, key, got.GetObjectMeta().ResourceVersion); err != nil {
					t.Errorf("Delete: %v", err)
				}
			})
		}
	}
}

func jsonOf(t *testing.T, r api.Resource) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKubectlSeesTheSameObjects: what the backend writes, kubectl shows,
// and what kubectl applies, the backend reads.
func TestKubectlSeesTheSameObjects(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	s := newStore(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gnp := &api.GlobalNetworkPolicy{
		TypeMeta:   api.TypeMeta{Kind: "GlobalNetworkPolicy"},
		ObjectMeta: api.ObjectMeta{Name: "kubectl-visible"},
		Spec:       api.GlobalNetworkPolicySpec{Selector: "app == 'db'"},
	}
	if _, err := s.Create(ctx, gnp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.Delete(context.Background(), api.KeyOf(gnp), "") })
	out := c.MustKubectl(t, "get", "globalnetworkpolicies.projectcalico.org", "kubectl-visible", "-o", "jsonpath={.spec.selector}")
	if out != "app == 'db'" {
		t.Errorf("kubectl shows selector %q", out)
	}

	manifest := `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: kubectl-applied
spec:
  cidr: fd00:10:20::/64
  natOutgoing: true
`
	if _, err := c.KubectlStdin(strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Kubectl("delete", "ippools.projectcalico.org", "kubectl-applied") })
	got, err := s.Get(ctx, api.Key{Kind: "IPPool", Name: "kubectl-applied"})
	if err != nil {
		t.Fatal(err)
	}
	pool := got.(*api.IPPool)
	if pool.Spec.CIDR != "fd00:10:20::/64" || !pool.Spec.NATOutgoing || pool.UID == "" {
		t.Errorf("kubectl's pool read as %s", jsonOf(t, pool))
	}
	if pool.Annotations["kubectl.kubernetes.io/last-applied-configuration"] == "" {
		t.Errorf("kubectl's annotations are not kept: %v", pool.Annotations)
	}
}

// unservedKind is registered with api but has no CRD.
const unservedKind = "TestUnserved"

func init() {
	api.Register(api.KindInfo{Kind: unservedKind, Plural: "testunserveds", New: func() api.Resource { return &dstest.Thing{} }})
}

// TestServerErrors: what the API server refuses is reported as such, not
// as a missing object.
func TestServerErrors(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c, dstest.ThingKind, dstest.NSThingKind)
	s := newStore(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}

	// A kind without its CRD: not "not found", but what to do about it.
	_, err := s.Get(ctx, api.Key{Kind: unservedKind, Name: "a"})
	if err == nil || errors.Is(err, datastore.ErrNotFound) || !strings.Contains(err.Error(), "CustomResourceDefinition installed") {
		t.Errorf("Get of a kind without a CRD: %v", err)
	}
	if _, err := s.List(ctx, datastore.ListOptions{Kind: unservedKind}); err == nil || !strings.Contains(err.Error(), "CustomResourceDefinition installed") {
		t.Errorf("List of a kind without a CRD: %v", err)
	}

	// A namespace that does not exist.
	_, err = s.Create(ctx, dstest.NewNSThing("no-such-namespace", "a", nil, dstest.ThingSpec{}))
	if err == nil || errors.Is(err, datastore.ErrNotFound) || !strings.Contains(err.Error(), `namespace "no-such-namespace" does not exist`) {
		t.Errorf("Create in a missing namespace: %v", err)
	}

	// A user RBAC does not allow: refused, and not an outage.
	other, err := kubernetes.New(c.UserConfig("nobody"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.List(ctx, datastore.ListOptions{Kind: dstest.ThingKind})
	if err == nil || errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("List as a user without rights: %v", err)
	}

	// After Close, everything fails as unavailable, and open watches end
	// with that error.
	closing := newStore(t, c)
	w, err := closing.Watch(ctx, datastore.WatchOptions{Kind: dstest.ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	_ = closing.Close()
	select {
	case ev, ok := <-w.Events():
		if !ok || ev.Type != datastore.Error || !errors.Is(ev.Err, datastore.ErrUnavailable) {
			t.Errorf("watch after Close: %v %v (open %v)", ev.Type, ev.Err, ok)
		}
	case <-time.After(20 * time.Second):
		t.Error("watch not ended by Close")
	}
	if _, err := closing.Get(ctx, api.Key{Kind: dstest.ThingKind, Name: "a"}); !errors.Is(err, datastore.ErrUnavailable) {
		t.Errorf("Get after Close: %v", err)
	}
}
