package ipamgc

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/servalnet/serval/internal/ipam"
)

// TestAddressDecisions drives one pod's addresses through scans across
// the grace period.
func TestAddressDecisions(t *testing.T) {
	tests := []struct {
		name string
		// act changes the world after the first scan found the pod
		// attached (report: its status lists its addresses).
		report bool
		act    func(e *env, p *pod)
		// duringGrace runs before the grace period ends.
		duringGrace func(e *env, p *pod)
		wantHeld    bool
		// staleCache: the cache never learns the pod back, so each scan
		// makes its addresses candidates again (and each release
		// attempt finds the pod live).
		staleCache bool
	}{
		{name: "live pod is never released", report: true, wantHeld: true},
		{name: "starting pod (no addresses in its status) is never released", wantHeld: true},
		{name: "pod gone: released after the grace period", report: true,
			act: func(e *env, p *pod) { e.deletePod(p) }},
		{name: "pod deleted while its node was down: released after the grace period", report: true,
			act: func(e *env, p *pod) { e.deleteNodeDown(p) }},
		{name: "pod finished: released", report: true,
			act: func(e *env, p *pod) { e.setStatus(p, corev1.PodSucceeded, p.ips...) }},
		{name: "pod failed: released", report: true,
			act: func(e *env, p *pod) { e.setStatus(p, corev1.PodFailed) }},
		{name: "pod recreated on another node with other addresses: released", report: true,
			act: func(e *env, p *pod) {
				e.deletePod(p)
				q := &pod{ns: p.ns, name: p.name, node: "n2"}
				e.createPod(q, corev1.PodRunning)
				e.setStatus(q, corev1.PodRunning, netip.MustParseAddr("10.99.0.1"))
			}},
		{name: "pod recreated on another node, not started: kept", report: true, wantHeld: true,
			act: func(e *env, p *pod) {
				e.deletePod(p)
				e.createPod(&pod{ns: p.ns, name: p.name, node: "n2"}, corev1.PodPending)
			}},
		{name: "pod gone, then back before the grace period ends: kept", report: true, wantHeld: true,
			act: func(e *env, p *pod) { e.deletePod(p) },
			duringGrace: func(e *env, p *pod) {
				e.createPod(p, corev1.PodRunning)
				e.setStatus(p, corev1.PodRunning, p.ips...)
			}},
		{name: "cache says gone, the API server says it exists: kept", report: true, wantHeld: true, staleCache: true,
			act: func(e *env, p *pod) {
				// A stale cache: the pod vanishes from it alone.
				obj, _, _ := e.gc.pods.GetStore().GetByKey(p.ns + "/" + p.name)
				if err := e.gc.pods.GetStore().Delete(obj); err != nil {
					e.t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 26, 122, "n1", "n2")
			p := e.attach("web-1", "n1", tt.report)
			other := e.attach("other", "n1", true)
			e.pass(0)
			if tt.act != nil {
				tt.act(e, p)
			}
			e.pass(time.Second)
			if !e.held(p) {
				t.Fatal("released at once, before the grace period")
			}
			e.pass(grace / 2)
			if tt.duringGrace != nil {
				tt.duringGrace(e, p)
			}
			e.pass(grace/2 - 2*time.Second)
			if !e.held(p) {
				t.Fatal("released before the grace period ended")
			}
			e.pass(5 * time.Second)
			e.pass(time.Minute)
			if got := e.held(p); got != tt.wantHeld {
				t.Errorf("after the grace period: held %v, want %v", got, tt.wantHeld)
			}
			want := 0
			if !tt.wantHeld {
				want = 1
			}
			if got := e.reclaimed(kindAddress); got != 2*want {
				t.Errorf("reclaimed addresses = %d, want %d", got, 2*want)
			}
			if got := e.candidates(kindAddress); got != 0 && !tt.staleCache {
				t.Errorf("candidates after the release = %d, want 0", got)
			}
			if !e.held(other) {
				t.Error("another pod's addresses were released")
			}
			// Much later, nothing else has moved.
			e.pass(24 * time.Hour)
			e.pass(time.Minute)
			if got := e.held(p); got != tt.wantHeld {
				t.Errorf("a day later: held %v, want %v", got, tt.wantHeld)
			}
			if !e.held(other) {
				t.Error("another pod's addresses were released a day later")
			}
		})
	}
}

// deleteNodeDown deletes the pod as the API server does when a node is
// down and the pod is force-deleted: the CNI plugin never runs.
func (e *env) deleteNodeDown(p *pod) { e.deletePod(p) }

func TestCandidateGauge(t *testing.T) {
	e := newEnv(t, 26, 122, "n1")
	p := e.attach("web", "n1", true)
	e.pass(0)
	e.deletePod(p)
	e.pass(time.Second)
	if got := e.candidates(kindAddress); got != 2 {
		t.Errorf("candidates = %d, want 2 (IPv4 and IPv6)", got)
	}
	// The CNI plugin's DEL gets there first: nothing left to reclaim.
	if err := e.ipam.ReleaseByHandle(e.ctx, p.handle); err != nil {
		t.Fatal(err)
	}
	e.pass(grace + time.Minute)
	if got, rec := e.candidates(kindAddress), e.reclaimed(kindAddress); got != 0 || rec != 0 {
		t.Errorf("after CNI DEL: candidates %d, reclaimed %d; want 0, 0", got, rec)
	}
}

// TestOtherAllocationsUntouched: addresses of workloads that are not
// Kubernetes pods (the plugin's "cni" orchestrator, tunnel addresses,
// addresses assigned by hand) are never collected.
func TestOtherAllocationsUntouched(t *testing.T) {
	e := newEnv(t, 26, 122, "n1")
	others := map[string]map[string]string{
		"cni-workload": {ipam.AttrNode: "n1", ipam.AttrNamespace: "default", ipam.AttrWorkload: "ctr1",
			ipam.AttrEndpoint: "n1-cni-ctr1-eth0"},
		"tunnel": {ipam.AttrNode: "n1"},
		"manual": nil,
	}
	for h, attrs := range others {
		if _, err := e.ipam.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: h, Node: "n1", Attrs: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		e.pass(grace)
	}
	for h := range others {
		if ips, err := e.ipam.IPsByHandle(e.ctx, h); err != nil || len(ips) != 1 {
			t.Errorf("handle %s holds %v (%v), want its address", h, ips, err)
		}
	}
}

func TestEmptyBlocks(t *testing.T) {
	e := newEnv(t, 30, 126, "n1") // 4 addresses a block
	var pods []*pod
	for i := range 9 { // 3 IPv4 and 3 IPv6 blocks
		pods = append(pods, e.attach("p"+string(rune('a'+i)), "n1", true))
	}
	if got := len(e.blocksOf("n1")); got != 6 {
		t.Fatalf("n1 has %d blocks, want 6", got)
	}
	first4 := netip.PrefixFrom(pods[0].ips[0], 30).Masked()
	first6 := netip.PrefixFrom(pods[0].ips[1], 126).Masked()
	for _, p := range pods[1:] { // CNI DEL of all but the first
		if err := e.ipam.ReleaseByHandle(e.ctx, p.handle); err != nil {
			t.Fatal(err)
		}
		e.deletePod(p)
	}
	e.pass(0)
	if got := len(e.blocksOf("n1")); got != 6 {
		t.Fatalf("after one empty scan n1 has %d blocks, want all 6", got)
	}
	e.pass(time.Minute)
	if got, want := e.blocksOf("n1"), []netip.Prefix{first4, first6}; !slices.Equal(got, want) {
		t.Fatalf("after two empty scans n1 has blocks %v, want %v (the ones in use)", got, want)
	}
	if got := e.reclaimed(kindBlock); got != 4 {
		t.Errorf("reclaimed blocks = %d, want 4", got)
	}
	// The last pod goes: its blocks are empty, but each is the node's
	// last of its family.
	if err := e.ipam.ReleaseByHandle(e.ctx, pods[0].handle); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		e.pass(time.Minute)
	}
	if got, want := e.blocksOf("n1"), []netip.Prefix{first4, first6}; !slices.Equal(got, want) {
		t.Errorf("n1 kept blocks %v, want %v (one per family)", got, want)
	}
	// A block that fills again between two scans is kept.
	q := e.attach("q", "n1", true)
	_ = q
	for i := range 5 {
		e.attach("r"+string(rune('a'+i)), "n1", true)
	}
	e.pass(time.Minute)
	e.pass(time.Minute)
	if got := len(e.blocksOf("n1")); got != 4 {
		t.Errorf("n1 has %d blocks after refilling, want 4 (6 addresses of each family in blocks of 4)", got)
	}
	probs, err := e.ipam.Check(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		// No WorkloadEndpoints in this test, and the Nodes are
		// Kubernetes', not the datastore's.
		if p.Kind != ipam.ProblemLeaked && p.Kind != ipam.ProblemMissingNode {
			t.Errorf("ipam check: %s", p)
		}
	}
}

func TestDeletedNode(t *testing.T) {
	e := newEnv(t, 26, 122, "n1", "n2")
	p := e.attach("web", "n2", true)
	keep := e.attach("keep", "n1", true)
	e.pass(0)
	e.deleteNode("n2")
	e.pass(time.Second)
	if got := e.candidates(kindNode); got != 1 {
		t.Errorf("node candidates = %d, want 1", got)
	}
	e.pass(grace + time.Minute)
	// The pod is still bound to n2 (the pod garbage collector has not
	// deleted it yet): nothing moves.
	if got := e.blocksOf("n2"); len(got) != 2 || !e.held(p) {
		t.Fatalf("with a pod still bound: n2 has blocks %v and the pod's addresses held %v; want 2 blocks, held", got, e.held(p))
	}
	e.deletePod(p)
	e.pass(time.Second)
	e.pass(grace + time.Minute)
	if e.held(p) {
		t.Error("the deleted pod's addresses were not released")
	}
	if got := e.blocksOf("n2"); len(got) != 0 {
		t.Errorf("n2 still has blocks %v", got)
	}
	st, err := e.ipam.State(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(st.AffinityNodes, "n2") {
		t.Errorf("n2 still holds affinities (nodes with affinities: %v)", st.AffinityNodes)
	}
	if got := e.reclaimed(kindNode); got != 1 {
		t.Errorf("reclaimed nodes = %d, want 1", got)
	}
	if !e.held(keep) || len(e.blocksOf("n1")) != 2 {
		t.Error("the other node lost addresses or blocks")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	e := newEnv(t, 26, 122)
	for _, cfg := range []Config{
		{},
		{IPAM: e.ipam},
		{IPAM: e.ipam, Kube: e.kube, GracePeriod: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

var _ = context.Background

// TestNodeNameMismatch: a host whose Serval node name ("host-7") is not
// its Kubernetes Node's name ("n1") holds blocks for a node Kubernetes
// does not know, and no pod is bound to that name; its blocks are kept
// while a live pod uses an address in them.
func TestNodeNameMismatch(t *testing.T) {
	e := newEnv(t, 26, 122, "n1")
	p := &pod{ns: "default", name: "web", node: "n1", handle: "k8s-pod-network.ctr-web"}
	e.createPod(p, corev1.PodPending)
	attrs := podAttrs(&pod{ns: "default", name: "web", node: "host-7"})
	res, err := e.ipam.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: p.handle, Node: "host-7", Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	p.ips = append(res.IPv4, res.IPv6...)
	e.setStatus(p, corev1.PodRunning, p.ips...)
	for range 4 {
		e.pass(grace)
	}
	if got := e.blocksOf("host-7"); len(got) != 2 || !e.held(p) {
		t.Errorf("host-7 has blocks %v and the pod's addresses held %v; want its 2 blocks, held", got, e.held(p))
	}
	if got := e.reclaimed(kindNode); got != 0 {
		t.Errorf("reclaimed nodes = %d, want 0", got)
	}
	// Once the pod is gone, the unknown node is cleaned up.
	e.deletePod(p)
	for range 4 {
		e.pass(grace)
	}
	if got := e.blocksOf("host-7"); len(got) != 0 || e.held(p) {
		t.Errorf("after the pod went: host-7 has blocks %v, the pod's addresses held %v; want none", got, e.held(p))
	}
}
