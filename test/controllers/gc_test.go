// Package controllers_test runs serval-controllers' IPAM garbage collector
// against a real kube-apiserver (internal/kubetest): pods made through the
// API, addresses from IPAM on a memory datastore, two replicas electing a
// leader through a real Lease.
package controllers_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/controllers"
	"github.com/servalnet/serval/internal/controllers/ipamgc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// replicaIPAM counts one replica's scans and releases.
type replicaIPAM struct {
	*ipam.Client
	scans    atomic.Int64
	mu       sync.Mutex
	released map[string]int // handle → addresses
}

func (r *replicaIPAM) State(ctx context.Context) (*ipam.State, error) {
	r.scans.Add(1)
	return r.Client.State(ctx)
}

func (r *replicaIPAM) ReleaseIPHeldBy(ctx context.Context, ip netip.Addr, handle string) (bool, error) {
	ok, err := r.Client.ReleaseIPHeldBy(ctx, ip, handle)
	if ok {
		r.mu.Lock()
		r.released[handle]++
		r.mu.Unlock()
	}
	return ok, err
}

func (r *replicaIPAM) releasedOf(handle string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.released[handle]
}

type testPod struct {
	name, node, handle string
	ips                []netip.Addr
}

// TestGarbageCollection: of two replicas only the Lease holder scans; a
// pod deleted through the API (its CNI DEL never ran) has its addresses
// released after the grace period; a live pod, and a pod still starting,
// keep theirs; when the leader stops, the other replica takes over and
// collects in its turn.
func TestGarbageCollection(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t, "ipamgc")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the default service account: %v", err)
	}
	node := ns + "-node" // Nodes are cluster-wide: named after the test's namespace
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node %s: %v", node, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })

	ds := datastore.NewMemory(nil)
	defer ds.Close()
	for _, p := range []*api.IPPool{
		{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "v4"}, Spec: api.IPPoolSpec{CIDR: "10.50.0.0/24", BlockSize: 28}},
		{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "v6"}, Spec: api.IPPoolSpec{CIDR: "fd00:50::/120", BlockSize: 124}},
	} {
		if _, err := ds.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	client := ipam.New(ds, ipam.Config{})

	attach := func(name string, report bool) *testPod {
		t.Helper()
		p := &testPod{name: name, node: node, handle: "k8s-pod-network.ctr-" + name}
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1"}}}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod %s: %v", name, err)
		}
		attrs := map[string]string{ipam.AttrNode: node, ipam.AttrNamespace: ns, ipam.AttrWorkload: name,
			ipam.AttrEndpoint: api.WorkloadEndpointName(node, api.OrchestratorKubernetes, name, "eth0"), ipam.AttrPodUID: string(pod.UID)}
		res, err := client.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: p.handle, Node: node, Attrs: attrs})
		if err != nil {
			t.Fatalf("allocating for pod %s: %v", name, err)
		}
		p.ips = append(res.IPv4, res.IPv6...)
		if report {
			pod.Status.Phase = corev1.PodRunning
			for _, ip := range p.ips {
				pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip.String()})
			}
			if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("reporting the addresses of pod %s: %v", name, err)
			}
		}
		return p
	}
	held := func(p *testPod) int {
		t.Helper()
		ips, err := client.IPsByHandle(ctx, p.handle)
		if err != nil {
			t.Fatal(err)
		}
		return len(ips)
	}
	// deletePod force-deletes, as one does when the pod's node is down:
	// a bound pod deleted gracefully would wait for its kubelet, and
	// there is none. The pod, still Terminating meanwhile, keeps its
	// addresses; its CNI DEL never runs.
	deletePod := func(p *testPod) {
		t.Helper()
		if err := cs.CoreV1().Pods(ns).Delete(ctx, p.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatalf("deleting pod %s: %v", p.name, err)
		}
	}

	live := attach("live", true)
	starting := attach("starting", false)
	gone1 := attach("gone-1", true)
	gone2 := attach("gone-2", true)
	// Deleted gracefully, a bound pod stays Terminating until its kubelet
	// confirms (never, here): it exists, and keeps its addresses.
	terminating := attach("terminating", true)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, terminating.name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting pod %s: %v", terminating.name, err)
	}

	type replica struct {
		name    string
		ipam    *replicaIPAM
		leading atomic.Bool
		cancel  context.CancelFunc
		done    chan error
	}
	var reps []*replica
	var running sync.WaitGroup
	defer running.Wait() // no replica logs after the test
	for _, name := range []string{"a", "b"} {
		r := &replica{name: name, ipam: &replicaIPAM{Client: client, released: map[string]int{}}, done: make(chan error, 1)}
		reps = append(reps, r)
		rctx, rcancel := context.WithCancel(ctx)
		r.cancel = rcancel
		defer rcancel()
		running.Go(func() {
			r.done <- controllers.Run(rctx, controllers.Options{Kube: cs, IPAM: r.ipam, Identity: r.name,
				LeaseNamespace: ns, Registry: prometheus.NewRegistry(), Logger: kubetestLogger(t, r.name),
				LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
				GC:        ipamgc.Config{GracePeriod: 2 * time.Second, ScanInterval: 100 * time.Millisecond},
				OnLeading: func(on bool) { r.leading.Store(on) }})
		})
	}
	waitFor(t, "a leader", func() bool { return reps[0].leading.Load() || reps[1].leading.Load() })
	leader, standby := reps[0], reps[1]
	if !leader.leading.Load() {
		leader, standby = standby, leader
	}
	lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, controllers.DefaultLeaseName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != leader.name {
		t.Fatalf("Lease %s/%s: %v, %v; want held by %s", ns, controllers.DefaultLeaseName, lease, err, leader.name)
	}

	deletePod(gone1)
	waitFor(t, "the deleted pod's addresses to be released", func() bool { return held(gone1) == 0 })
	if n := leader.ipam.releasedOf(gone1.handle); n != 2 {
		t.Errorf("the leader released %d address(es) of %s, want 2", n, gone1.name)
	}
	// Many more scans (and grace periods) later, the others keep theirs.
	scans := leader.ipam.scans.Load()
	waitFor(t, "more scans", func() bool { return leader.ipam.scans.Load() >= scans+30 })
	time.Sleep(3 * time.Second) // beyond another grace period
	for _, p := range []*testPod{live, starting, terminating, gone2} {
		if n := held(p); n != 2 {
			t.Errorf("pod %s holds %d address(es), want its 2", p.name, n)
		}
	}
	if n := standby.ipam.scans.Load(); n != 0 {
		t.Errorf("the standby replica %s scanned %d times while %s led", standby.name, n, leader.name)
	}

	// The leader stops; the standby takes over and collects the next.
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Errorf("Run of the stopped leader: %v", err)
	}
	waitFor(t, "the standby to lead", func() bool { return standby.leading.Load() })
	deletePod(gone2)
	waitFor(t, "the second deleted pod's addresses to be released", func() bool { return held(gone2) == 0 })
	if n := standby.ipam.releasedOf(gone2.handle); n != 2 {
		t.Errorf("the new leader released %d address(es) of %s, want 2", n, gone2.name)
	}
	for _, p := range []*testPod{live, starting, terminating} {
		if n := held(p); n != 2 {
			t.Errorf("pod %s holds %d address(es), want its 2", p.name, n)
		}
		for _, r := range reps {
			if n := r.ipam.releasedOf(p.handle); n != 0 {
				t.Errorf("replica %s released %d address(es) of live pod %s", r.name, n, p.name)
			}
		}
	}
	probs, err := client.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		// No WorkloadEndpoints and no datastore Nodes here: only the
		// handle bookkeeping is checked.
		if p.Kind == ipam.ProblemHandleCount || p.Kind == ipam.ProblemMissingHandle {
			t.Errorf("ipam check: %s", p)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kubetestLogger logs a replica's messages through t.
func kubetestLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", name)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
