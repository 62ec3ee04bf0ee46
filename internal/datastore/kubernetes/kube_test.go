package kubernetes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"

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

// newStore stores every kind as a custom resource, Nodes and
// WorkloadEndpoints too, to test each kind's CRD.
func newStore(t *testing.T, c *kubetest.Cluster) *kubernetes.Store {
	t.Helper()
	s, err := kubernetes.New(c.RESTConfig(), nil, kubernetes.WithStoredWorkloadsAndNodes())
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
				if derivedName(key.Name) {
					// Names Kubernetes objects stand for are not Serval's
					// to write here, as in Calico's Kubernetes mode.
					if _, err := s.Create(ctx, r); !errors.Is(err, kubernetes.ErrDerived) {
						t.Errorf("Create of %s: %v, want ErrDerived", key, err)
					}
					return
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

// derivedName: a name Kubernetes objects stand for.
func derivedName(name string) bool {
	for _, p := range []string{"kns.", "ksa.", "knp.default.", "kcnp."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
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

// TestDerivedKinds: Profiles, policies, WorkloadEndpoints and Nodes that
// Kubernetes objects stand for are read like stored ones, merged with
// the stored ones, followed by watches, and refused to writers.
func TestDerivedKinds(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	s, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := k8s.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t, "derived")
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Labels: map[string]string{"role": "ci"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := "kn-" + ns
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "np1"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name, ips string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name},
				Annotations: map[string]string{"cni.projectcalico.org/podIPs": ips}},
			Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "builder",
				Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}},
		}
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("web", "10.65.0.5/32,fd00:65::5/128"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stored := &api.NetworkPolicy{TypeMeta: api.TypeMeta{Kind: "NetworkPolicy"},
		ObjectMeta: api.ObjectMeta{Namespace: ns, Name: "default.mine"},
		Spec:       api.NetworkPolicySpec{Selector: "all()"}}
	if _, err := s.Create(ctx, stored); err != nil {
		t.Fatal(err)
	}

	prof, err := s.Get(ctx, api.Key{Kind: "Profile", Name: "kns." + ns})
	if err != nil {
		t.Fatal(err)
	}
	if l := prof.(*api.Profile).Spec.LabelsToApply; l["pcns.team"] != "a" {
		t.Errorf("namespace profile labels %v", l)
	}
	sa, err := s.Get(ctx, api.Key{Kind: "Profile", Name: "ksa." + ns + ".builder"})
	if err != nil || sa.(*api.Profile).Spec.LabelsToApply["pcsa.role"] != "ci" {
		t.Errorf("service account profile: %v %v", sa, err)
	}
	names := func(kind, namespace string) string {
		t.Helper()
		res, err := s.List(ctx, datastore.ListOptions{Kind: kind, Namespace: namespace})
		if err != nil {
			t.Fatalf("List %s: %v", kind, err)
		}
		var out []string
		for _, r := range res.Items {
			out = append(out, r.GetObjectMeta().Name)
		}
		return strings.Join(out, ",")
	}
	if got, want := names("NetworkPolicy", ns), "default.mine,knp.default.np1"; got != want {
		t.Errorf("policies of %s = %s, want %s", ns, got, want)
	}
	// The test cluster does not serve ClusterNetworkPolicies (an add-on):
	// the global policies are the stored ones, and a watch works too.
	if _, err := s.List(ctx, datastore.ListOptions{Kind: "GlobalNetworkPolicy"}); err != nil {
		t.Errorf("List GlobalNetworkPolicy without ClusterNetworkPolicies served: %v", err)
	}
	gw, err := s.Watch(ctx, datastore.WatchOptions{Kind: "GlobalNetworkPolicy"})
	if err != nil {
		t.Fatal(err)
	}
	gnp := &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy"}, ObjectMeta: api.ObjectMeta{Name: "watched-" + ns}}
	if _, err := s.Create(ctx, gnp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.Delete(context.Background(), api.KeyOf(gnp), "") })
	select {
	case ev := <-gw.Events():
		if ev.Type != datastore.Added || ev.Object.GetObjectMeta().Name != gnp.Name {
			t.Errorf("GlobalNetworkPolicy watch: %v %v", ev.Type, ev.Err)
		}
	case <-ctx.Done():
		t.Error("no GlobalNetworkPolicy watch event")
	}
	gw.Stop()

	wepName := api.WorkloadEndpointName(node, "k8s", "web", "eth0")
	if got := names("WorkloadEndpoint", ns); got != wepName {
		t.Errorf("endpoints of %s = %s, want %s", ns, got, wepName)
	}
	wep, err := s.Get(ctx, api.Key{Kind: "WorkloadEndpoint", Namespace: ns, Name: wepName})
	if err != nil {
		t.Fatal(err)
	}
	if w := wep.(*api.WorkloadEndpoint); strings.Join(w.Spec.IPNetworks, ",") != "10.65.0.5/32,fd00:65::5/128" || w.Spec.Node != node ||
		w.Labels["projectcalico.org/serviceaccount"] != "builder" {
		t.Errorf("endpoint of the pod: %s", jsonOf(t, w))
	}
	if _, err := s.Get(ctx, api.Key{Kind: "Node", Name: node}); err != nil {
		t.Errorf("Node from the Kubernetes Node: %v", err)
	}

	// Writers are told what to change instead.
	prof.GetObjectMeta().Annotations = map[string]string{"x": "y"}
	if _, err := s.Update(ctx, prof); !errors.Is(err, kubernetes.ErrDerived) || !strings.Contains(err.Error(), "derived from Namespaces; change the Namespace instead") {
		t.Errorf("Update of a namespace profile: %v", err)
	}
	if _, err := s.Delete(ctx, api.KeyOf(wep), ""); !errors.Is(err, kubernetes.ErrDerived) || !strings.Contains(err.Error(), "change the Pod") {
		t.Errorf("Delete of a pod's endpoint: %v", err)
	}

	// A watch follows the pods.
	list, err := s.List(ctx, datastore.ListOptions{Kind: "WorkloadEndpoint", Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: "WorkloadEndpoint", Namespace: ns, Revision: list.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("db", "10.65.0.6/32"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	// A bound pod's delete is two writes (its deletionTimestamp, then the
	// delete itself): the endpoint is Modified, then Deleted.
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-w.Events():
			if ev.Type == datastore.Error {
				t.Fatalf("watch: %v", ev.Err)
			}
			got = append(got, ev.Type.String()+" "+ev.Object.GetObjectMeta().Name)
		case <-ctx.Done():
			t.Fatalf("watch events so far: %v", got)
		}
	}
	want := []string{"Added " + api.WorkloadEndpointName(node, "k8s", "db", "eth0"), "Modified " + wepName, "Deleted " + wepName}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("watch events = %v, want %v", got, want)
	}
}

// TestSyncerOnDerivedKinds: a Syncer (as serval-node runs one) lists and
// follows the derived kinds: a namespace's profile and a pod's endpoint
// arrive, and so do later pods.
func TestSyncerOnDerivedKinds(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	s, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := k8s.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t, "syncer")
	// No controller manager makes the namespace's default account.
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := "kn-" + ns
	pod := func(name, ip string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"cni.projectcalico.org/podIP": ip}},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}},
		}
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("a", "10.66.0.1/32"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := &dstest.Recorder{}
	sy := datastore.NewSyncer(s, rec, datastore.SyncerConfig{Kinds: []string{"Profile", "WorkloadEndpoint"}, Namespace: ns})
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sy.Run(sctx) }()
	defer func() {
		scancel()
		<-done
	}()
	has := func(kind, name string) bool {
		for _, u := range rec.Updates() {
			if u.Key.Kind == kind && u.Key.Name == name && u.Type != datastore.Deleted {
				return true
			}
		}
		return false
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s; updates: %d, statuses %v", what, len(rec.Updates()), rec.Statuses())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("the namespace's profile and pod a's endpoint", func() bool {
		st := rec.Statuses()
		return len(st) > 0 && st[len(st)-1] == datastore.InSync &&
			has("Profile", "kns."+ns) && has("WorkloadEndpoint", api.WorkloadEndpointName(node, "k8s", "a", "eth0"))
	})
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("b", "10.66.0.2/32"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("pod b's endpoint", func() bool { return has("WorkloadEndpoint", api.WorkloadEndpointName(node, "k8s", "b", "eth0")) })
}

// TestListPages: a list longer than a page is read a page at a time with
// continue tokens, every page at the first one's revision, and a stored
// kind merged with a derived one stays one snapshot.
func TestListPages(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c, dstest.ThingKind, dstest.NSThingKind)
	s, err := kubernetes.New(c.RESTConfig(), nil, kubernetes.WithListPageSize(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	emptyKinds(t, s, dstest.ThingKind)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("p%d", i)
		want = append(want, name)
		if _, err := s.Create(ctx, dstest.NewThing(name, nil, dstest.ThingSpec{})); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var revs []int64
	pages := 0
	rev, err := s.ListPages(ctx, datastore.ListOptions{Kind: dstest.ThingKind}, func(items []api.Resource, r int64) error {
		pages++
		revs = append(revs, r)
		for _, it := range items {
			got = append(got, it.GetObjectMeta().Name)
		}
		// A write between pages is not in this snapshot.
		if pages == 1 {
			if _, err := s.Create(ctx, dstest.NewThing("late", nil, dstest.ThingSpec{})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 4 {
		t.Errorf("pages %d, items %v; want 4 pages of %v", pages, got, want)
	}
	for _, r := range revs {
		if r != rev {
			t.Errorf("page at revision %d, list at %d", r, rev)
		}
	}
	// An error from the consumer stops the listing and comes back as it is.
	stop := errors.New("enough")
	if _, err := s.ListPages(ctx, datastore.ListOptions{Kind: dstest.ThingKind}, func([]api.Resource, int64) error { return stop }); err != stop {
		t.Errorf("ListPages with a failing consumer: %v", err)
	}
}
