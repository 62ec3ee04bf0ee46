package ipamgc

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/ipam"
)

// recordingIPAM remembers every address the collector released.
type recordingIPAM struct {
	*ipam.Client
	mu       sync.Mutex
	released map[string]int // handle → addresses released
}

func (r *recordingIPAM) ReleaseIPHeldBy(ctx context.Context, ip netip.Addr, handle string) (bool, error) {
	ok, err := r.Client.ReleaseIPHeldBy(ctx, ip, handle)
	if ok {
		r.mu.Lock()
		r.released[handle]++
		r.mu.Unlock()
	}
	return ok, err
}

func (r *recordingIPAM) count(handle string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.released[handle]
}

// TestRaceDeletionsWithAllocations: while pods are created and given
// addresses on three nodes, other pods are deleted without their CNI DEL
// (their node was down) and the collector runs with the clock racing
// ahead. Every address of a deleted pod is released, no address of a live
// pod ever is, and IPAM's own check finds nothing wrong.
func TestRaceDeletionsWithAllocations(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	e := newEnv(t, 28, 124, nodes...) // 16 addresses a block: blocks fill and empty
	for _, n := range nodes {
		if _, err := e.ds.Create(e.ctx, &api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recordingIPAM{Client: e.ipam, released: map[string]int{}}
	gc, err := New(Config{IPAM: rec, Kube: e.kube, Clock: e.clk, GracePeriod: grace, ScanInterval: time.Minute, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	var run sync.WaitGroup
	run.Go(func() {
		if err := gc.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	defer func() {
		cancel()
		run.Wait()
	}()
	e.waitWatching()

	const workers, perWorker = 4, 30
	var live, doomed sync.Map // handle → *pod
	toDelete := make(chan *pod, workers*perWorker)
	var alloc, del sync.WaitGroup
	for w := range workers {
		alloc.Go(func() {
			for i := range perWorker {
				p := &pod{ns: "default", name: fmt.Sprintf("w%d-p%d", w, i), node: nodes[(w+i)%len(nodes)]}
				p.handle = "k8s-pod-network.ctr-" + p.name
				// One pod in three is deleted; one live pod in four never
				// reports its addresses (it is starting).
				dies, reports := i%3 == 0, i%4 != 1
				if err := e.attachRacing(p, reports); err != nil {
					t.Error(err)
					return
				}
				if dies {
					doomed.Store(p.handle, p)
					toDelete <- p
				} else {
					live.Store(p.handle, p)
				}
			}
		})
	}
	del.Go(func() {
		for p := range toDelete {
			if err := e.detachNodeDown(p); err != nil {
				t.Error(err)
			}
		}
	})
	stepping := make(chan struct{})
	var clock sync.WaitGroup
	clock.Go(func() {
		for {
			select {
			case <-stepping:
				return
			default:
			}
			e.clk.Step(2 * time.Minute)
			time.Sleep(2 * time.Millisecond)
		}
	})
	alloc.Wait()
	close(toDelete)
	del.Wait()

	// Let the collector finish: every doomed pod's addresses go.
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the deleted pods' addresses to be released", func() bool {
		done := true
		doomed.Range(func(k, _ any) bool {
			ips, err := e.ipam.IPsByHandle(e.ctx, k.(string))
			if err != nil || len(ips) > 0 {
				done = false
			}
			return done
		})
		return done
	})
	close(stepping)
	clock.Wait()

	live.Range(func(k, v any) bool {
		p := v.(*pod)
		if n := rec.count(p.handle); n > 0 {
			t.Errorf("%d address(es) of live pod %s (handle %s) released", n, p.name, p.handle)
		}
		if !e.held(p) {
			t.Errorf("live pod %s lost its addresses %v", p.name, p.ips)
		}
		return true
	})
	doomed.Range(func(k, v any) bool {
		if n := rec.count(k.(string)); n != 2 {
			t.Errorf("deleted pod %s: %d address(es) released by the collector, want 2", v.(*pod).name, n)
		}
		return true
	})
	probs, err := e.ipam.Check(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("ipam check: %s", p)
	}
}

// attachRacing is attach for many goroutines: it returns errors rather
// than failing, writes the pod's WorkloadEndpoint as the CNI plugin
// does, and (with report) the pod's addresses into its status.
func (e *env) attachRacing(p *pod, report bool) error {
	kp := &corev1.Pod{}
	kp.Namespace, kp.Name, kp.UID, kp.Spec.NodeName, kp.Status.Phase = p.ns, p.name, "uid-"+typesUID(p.name), p.node, corev1.PodPending
	if _, err := e.kube.CoreV1().Pods(p.ns).Create(e.ctx, kp, createOpts); err != nil {
		return fmt.Errorf("creating pod %s: %w", p.name, err)
	}
	res, err := e.ipam.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: p.handle, Node: p.node, Attrs: podAttrs(p)})
	if err != nil {
		return fmt.Errorf("allocating for pod %s: %w", p.name, err)
	}
	p.ips = append(res.IPv4, res.IPv6...)
	w := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: podAttrs(p)[ipam.AttrEndpoint], Namespace: p.ns},
		Spec: api.WorkloadEndpointSpec{Orchestrator: api.OrchestratorKubernetes, Node: p.node, Pod: p.name, Workload: p.name,
			Endpoint: "eth0", InterfaceName: "cali" + fmt.Sprintf("%011x", len(p.name)), ContainerID: "ctr-" + p.name}}
	for _, ip := range p.ips {
		w.Spec.IPNetworks = append(w.Spec.IPNetworks, netip.PrefixFrom(ip, ip.BitLen()).String())
	}
	if _, err := e.ds.Create(e.ctx, w); err != nil {
		return fmt.Errorf("creating the endpoint of pod %s: %w", p.name, err)
	}
	if !report {
		return nil
	}
	kp.Status.Phase = corev1.PodRunning
	for _, ip := range p.ips {
		kp.Status.PodIPs = append(kp.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if _, err := e.kube.CoreV1().Pods(p.ns).UpdateStatus(e.ctx, kp, updateOpts); err != nil {
		return fmt.Errorf("reporting the addresses of pod %s: %w", p.name, err)
	}
	return nil
}

// detachNodeDown deletes a pod whose node is down: the API object and its
// endpoint go, its addresses stay allocated (no CNI DEL).
func (e *env) detachNodeDown(p *pod) error {
	if err := e.kube.CoreV1().Pods(p.ns).Delete(e.ctx, p.name, deleteOpts); err != nil {
		return fmt.Errorf("deleting pod %s: %w", p.name, err)
	}
	if _, err := e.ds.Delete(e.ctx, api.Key{Kind: "WorkloadEndpoint", Namespace: p.ns, Name: podAttrs(p)[ipam.AttrEndpoint]}, ""); err != nil {
		return fmt.Errorf("deleting the endpoint of pod %s: %w", p.name, err)
	}
	return nil
}
