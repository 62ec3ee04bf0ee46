package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clientset "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/controllers"
	"github.com/servalnet/serval/internal/controllers/ipamgc"
	"github.com/servalnet/serval/internal/crd"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/kubetest"
)

// TestRaceOnKubernetesDatastore: everything on one real API server, IPAM
// too (the kubernetes datastore, Serval's CRDs). Pods are created and
// given addresses on two nodes while others are force-deleted (their node
// was down: no CNI DEL) and the collector runs with a 1 s grace period.
// Every deleted pod's addresses are released, no live pod's ever is. The
// collector runs as its service account with the RBAC of its manifest.
func TestRaceOnKubernetesDatastore(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t, "ipamgc-race")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := clientset.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the default service account: %v", err)
	}
	nodes := []string{ns + "-a", ns + "-b"}
	for _, n := range nodes {
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", n, err)
		}
		t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
	}
	installCRDs(t, ctx, c)
	ds, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
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
	for _, p := range []*api.IPPool{
		{TypeMeta: api.TypeMeta{Kind: "IPPool", APIVersion: api.APIVersion}, ObjectMeta: api.ObjectMeta{Name: "race-v4"}, Spec: api.IPPoolSpec{CIDR: "10.51.0.0/24", BlockSize: 28}},
		{TypeMeta: api.TypeMeta{Kind: "IPPool", APIVersion: api.APIVersion}, ObjectMeta: api.ObjectMeta{Name: "race-v6"}, Spec: api.IPPoolSpec{CIDR: "fd00:51::/120", BlockSize: 124}},
	} {
		if _, err := ds.Create(ctx, p); err != nil {
			t.Fatalf("creating pool %s: %v", p.Name, err)
		}
	}
	client := ipam.New(ds, ipam.Config{})

	// The collector runs as its service account, with the RBAC of
	// manifests/serval-controllers-rbac.yaml and nothing more.
	c.MustKubectl(t, "apply", "-f", "../../manifests/serval-controllers-rbac.yaml")
	saCfg := c.UserConfig("system:serviceaccount:kube-system:serval-controllers",
		"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated")
	saKube, err := clientset.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	saDS, err := kubernetes.New(saCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer saDS.Close()
	rec := &replicaIPAM{Client: ipam.New(saDS, ipam.Config{}), released: map[string]int{}}
	if _, err := saKube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the service account may list secrets (%v): the test does not run with its RBAC alone", err)
	}

	rctx, rcancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer running.Wait()
	defer rcancel()
	running.Go(func() {
		if err := controllers.Run(rctx, controllers.Options{Kube: saKube, IPAM: rec, Identity: "solo", LeaseName: ns,
			Registry: prometheus.NewRegistry(), Logger: kubetestLogger(t, "solo"),
			GC: ipamgc.Config{GracePeriod: time.Second, ScanInterval: 100 * time.Millisecond, Workers: 3}}); err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	const workers, perWorker = 4, 12
	var mu sync.Mutex
	var live, doomed []*testPod
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				p := &testPod{name: fmt.Sprintf("w%d-p%d", w, i), node: nodes[(w+i)%len(nodes)]}
				p.handle = "k8s-pod-network.ctr-" + p.name
				dies, reports := i%3 == 0, i%4 != 1
				if err := attachPod(ctx, cs, client, ns, p, reports); err != nil {
					t.Error(err)
					return
				}
				if !dies {
					mu.Lock()
					live = append(live, p)
					mu.Unlock()
					continue
				}
				if err := cs.CoreV1().Pods(ns).Delete(ctx, p.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
					t.Errorf("deleting pod %s: %v", p.name, err)
					return
				}
				mu.Lock()
				doomed = append(doomed, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	holds := func(p *testPod) int {
		ips, err := client.IPsByHandle(ctx, p.handle)
		if err != nil {
			t.Fatalf("addresses of %s: %v", p.handle, err)
		}
		return len(ips)
	}
	waitFor(t, "every deleted pod's addresses to be released", func() bool {
		for _, p := range doomed {
			if holds(p) > 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // more grace periods, many more scans
	for _, p := range live {
		if n := holds(p); n != 2 {
			t.Errorf("live pod %s holds %d address(es), want its 2", p.name, n)
		}
		if n := rec.releasedOf(p.handle); n != 0 {
			t.Errorf("%d address(es) of live pod %s released", n, p.name)
		}
	}
	for _, p := range doomed {
		if n := rec.releasedOf(p.handle); n != 2 {
			t.Errorf("deleted pod %s: %d address(es) released by the collector, want 2", p.name, n)
		}
	}
	probs, err := client.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.Kind == ipam.ProblemHandleCount || p.Kind == ipam.ProblemMissingHandle || p.Kind == ipam.ProblemNotAllocated {
			t.Errorf("ipam check: %s", p)
		}
	}
}

// attachPod creates a pod bound to p.node and allocates its addresses as
// the CNI plugin in Kubernetes mode does; with report, its status lists
// them.
func attachPod(ctx context.Context, cs clientset.Interface, client assigner, ns string, p *testPod, report bool) error {
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name},
		Spec: corev1.PodSpec{NodeName: p.node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1"}}}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating pod %s: %w", p.name, err)
	}
	attrs := map[string]string{ipam.AttrNode: p.node, ipam.AttrNamespace: ns, ipam.AttrWorkload: p.name,
		ipam.AttrEndpoint: api.WorkloadEndpointName(p.node, api.OrchestratorKubernetes, p.name, "eth0"), ipam.AttrPodUID: string(pod.UID)}
	res, err := client.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: p.handle, Node: p.node, Attrs: attrs})
	if err != nil {
		return fmt.Errorf("allocating for pod %s: %w", p.name, err)
	}
	p.ips = append(res.IPv4, res.IPv6...)
	if !report {
		return nil
	}
	pod.Status.Phase = corev1.PodRunning
	for _, ip := range p.ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("reporting the addresses of pod %s: %w", p.name, err)
	}
	return nil
}

// assigner is the part of IPAM attachPod uses.
type assigner interface {
	AutoAssign(ctx context.Context, args ipam.AutoAssignArgs) (*ipam.AssignResult, error)
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
		deadline := time.Now().Add(2 * time.Minute)
		for {
			_, err := dc.Resource(crd.GVR(info)).List(ctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the CRD of %s is not served: %v", info.Kind, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
