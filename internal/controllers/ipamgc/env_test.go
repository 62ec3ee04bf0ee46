package ipamgc

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
)

// env is a collector on a memory datastore and a fake API server, with a
// fake clock; the test runs its scans and releases one by one.
type env struct {
	t    *testing.T
	ctx  context.Context
	ds   *datastore.Memory
	ipam *ipam.Client
	kube *fake.Clientset
	clk  *testingclock.FakeClock
	gc   *Controller
	// watching receives the resource of each watch the fake API server
	// starts (see newEnv).
	watching chan string
}

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

const grace = 15 * time.Minute

func newEnv(t *testing.T, blockSize4, blockSize6 int, nodes ...string) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ds := datastore.NewMemory(nil)
	t.Cleanup(func() { ds.Close() })
	e := &env{t: t, ctx: ctx, ds: ds, ipam: ipam.New(ds, ipam.Config{}), kube: fake.NewClientset(), clk: testingclock.NewFakeClock(t0)}
	for _, p := range []*api.IPPool{
		{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "v4"}, Spec: api.IPPoolSpec{CIDR: "10.40.0.0/16", BlockSize: blockSize4}},
		{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "v6"}, Spec: api.IPPoolSpec{CIDR: "fd00:40::/112", BlockSize: blockSize6}},
	} {
		if _, err := ds.Create(ctx, p); err != nil {
			t.Fatalf("creating pool %s: %v", p.Name, err)
		}
	}
	for _, n := range nodes {
		e.addNode(n)
	}
	// The fake clientset has no resourceVersions: what changes between an
	// informer's list and its watch is lost to it (a pod deleted then
	// stays in its cache for ever, and its addresses are never
	// collected). So each collector's watches are known to be made before
	// a test changes anything (waitWatching).
	e.watching = make(chan string, 16)
	e.kube.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := e.kube.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return false, nil, err
		}
		select {
		case e.watching <- a.GetResource().Resource:
		default:
		}
		return true, w, nil
	})
	gc, err := New(Config{IPAM: e.ipam, Kube: e.kube, Clock: e.clk, GracePeriod: grace, ScanInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.gc = gc
	if err := gc.start(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitWatching()
	t.Cleanup(func() {
		gc.queue.ShutDown()
		cancel() // the informers stop with the context
		gc.factory.Shutdown()
	})
	return e
}

// waitWatching returns once a collector's informers watch pods and
// nodes.
func (e *env) waitWatching() {
	e.t.Helper()
	for range 2 {
		select {
		case <-e.watching:
		case <-time.After(time.Minute):
			e.t.Fatal("the collector's informers did not start watching")
		}
	}
}

func (e *env) addNode(name string) {
	e.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}}
	if _, err := e.kube.CoreV1().Nodes().Create(e.ctx, n, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating node %s: %v", name, err)
	}
	e.waitCache(func() bool { return e.gc == nil || e.gc.nodeCached(name) }, "node %s in the cache", name)
}

func (e *env) deleteNode(name string) {
	e.t.Helper()
	if err := e.kube.CoreV1().Nodes().Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatalf("deleting node %s: %v", name, err)
	}
	e.waitCache(func() bool { return !e.gc.nodeCached(name) }, "node %s gone from the cache", name)
}

// pod is one pod and the attachment the CNI plugin made for it.
type pod struct {
	ns, name, node string
	handle         string
	ips            []netip.Addr
}

// attach creates a pod bound to node and allocates it one IPv4 and one
// IPv6 address as the CNI plugin in Kubernetes mode does; with
// report, the pod's status lists them.
func (e *env) attach(name, node string, report bool) *pod {
	e.t.Helper()
	p := &pod{ns: "default", name: name, node: node, handle: "k8s-pod-network.ctr-" + name}
	e.createPod(p, corev1.PodPending)
	res, err := e.ipam.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: p.handle, Node: node, Attrs: podAttrs(p)})
	if err != nil {
		e.t.Fatalf("allocating for pod %s: %v", name, err)
	}
	p.ips = append(res.IPv4, res.IPv6...)
	if report {
		e.setStatus(p, corev1.PodRunning, p.ips...)
	}
	return p
}

func podAttrs(p *pod) map[string]string {
	return map[string]string{ipam.AttrNode: p.node, ipam.AttrNamespace: p.ns, ipam.AttrWorkload: p.name,
		ipam.AttrEndpoint: api.WorkloadEndpointName(p.node, api.OrchestratorKubernetes, p.name, "eth0")}
}

func (e *env) createPod(p *pod, phase corev1.PodPhase) {
	e.t.Helper()
	kp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, UID: types.UID(fmt.Sprint("uid-", p.name, "-", time.Now().UnixNano()))},
		Spec: corev1.PodSpec{NodeName: p.node}, Status: corev1.PodStatus{Phase: phase}}
	if _, err := e.kube.CoreV1().Pods(p.ns).Create(e.ctx, kp, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating pod %s: %v", p.name, err)
	}
	e.waitCache(func() bool { return e.gc.cachedPod(podRef{Namespace: p.ns, Name: p.name}) != nil }, "pod %s in the cache", p.name)
}

func (e *env) setStatus(p *pod, phase corev1.PodPhase, ips ...netip.Addr) {
	e.t.Helper()
	kp, err := e.kube.CoreV1().Pods(p.ns).Get(e.ctx, p.name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	kp.Status.Phase = phase
	kp.Status.PodIPs = nil
	for _, ip := range ips {
		kp.Status.PodIPs = append(kp.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if _, err := e.kube.CoreV1().Pods(p.ns).UpdateStatus(e.ctx, kp, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.waitCache(func() bool {
		c := e.gc.cachedPod(podRef{Namespace: p.ns, Name: p.name})
		return c != nil && c.Status.Phase == phase && len(c.Status.PodIPs) == len(ips)
	}, "pod %s status in the cache", p.name)
}

func (e *env) deletePod(p *pod) {
	e.t.Helper()
	if err := e.kube.CoreV1().Pods(p.ns).Delete(e.ctx, p.name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatalf("deleting pod %s: %v", p.name, err)
	}
	e.waitCache(func() bool { return e.gc.cachedPod(podRef{Namespace: p.ns, Name: p.name}) == nil }, "pod %s gone from the cache", p.name)
}

// waitCache waits (generously) for the informers to see a change.
func (e *env) waitCache(cond func() bool, format string, args ...any) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pass moves the clock by d, scans and runs every release queued.
func (e *env) pass(d time.Duration) {
	e.t.Helper()
	e.clk.Step(d)
	if err := e.gc.scan(e.ctx); err != nil {
		e.t.Fatalf("scan: %v", err)
	}
	for e.gc.queue.Len() > 0 {
		e.gc.processNext(e.ctx)
	}
}

// held reports whether the pod's handle still holds its addresses.
func (e *env) held(p *pod) bool {
	e.t.Helper()
	ips, err := e.ipam.IPsByHandle(e.ctx, p.handle)
	if err != nil {
		e.t.Fatal(err)
	}
	switch len(ips) {
	case len(p.ips):
		return true
	case 0:
		return false
	}
	e.t.Fatalf("handle %s holds %v, want all of %v or none", p.handle, ips, p.ips)
	return false
}

func (e *env) reclaimed(kind string) int {
	return int(testutil.ToFloat64(e.gc.m.Reclaimed.WithLabelValues(kind)))
}

func (e *env) candidates(kind string) int {
	return int(testutil.ToFloat64(e.gc.m.Candidates.WithLabelValues(kind)))
}

// blocksOf returns the CIDRs of node's blocks.
func (e *env) blocksOf(node string) []netip.Prefix {
	e.t.Helper()
	st, err := e.ipam.State(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []netip.Prefix
	for _, b := range st.Blocks {
		if b.Node == node {
			out = append(out, b.CIDR)
		}
	}
	return out
}

var (
	createOpts = metav1.CreateOptions{}
	updateOpts = metav1.UpdateOptions{}
	deleteOpts = metav1.DeleteOptions{}
)

func typesUID(s string) types.UID { return types.UID(s) }
