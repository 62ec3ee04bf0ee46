package controllers_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/controllers"
	"github.com/servalnet/serval/internal/controllers/ipamgc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/kubetest"
)

// TestDeletedNode: a Kubernetes Node is deleted while a pod is still
// bound to it. Its blocks stay while the pod exists; once the pod is
// force-deleted, the pod's addresses, the node's affinities and its blocks
// go. The other node keeps everything.
func TestDeletedNode(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t, "ipamgc-node")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := clientset.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the default service account: %v", err)
	}
	keepNode, goneNode := ns+"-keep", ns+"-gone"
	for _, n := range []string{keepNode, goneNode} {
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", n, err)
		}
		t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
	}
	ds := datastore.NewMemory(nil)
	defer ds.Close()
	for _, p := range []*api.IPPool{
		{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "v4"}, Spec: api.IPPoolSpec{CIDR: "10.52.0.0/24", BlockSize: 29}},
		{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "v6"}, Spec: api.IPPoolSpec{CIDR: "fd00:52::/120", BlockSize: 125}},
	} {
		if _, err := ds.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	client := ipam.New(ds, ipam.Config{})
	pods := map[string]*testPod{}
	for _, n := range []string{keepNode, goneNode} {
		p := &testPod{name: "web-" + n[len(ns)+1:], node: n}
		p.handle = "k8s-pod-network.ctr-" + p.name
		if err := attachPod(ctx, cs, client, ns, p, true); err != nil {
			t.Fatal(err)
		}
		pods[n] = p
	}

	rctx, rcancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer running.Wait()
	defer rcancel()
	running.Go(func() {
		if err := controllers.Run(rctx, controllers.Options{Kube: cs, IPAM: client, Identity: "solo", LeaseNamespace: ns,
			Registry: prometheus.NewRegistry(), Logger: kubetestLogger(t, "solo"),
			GC: ipamgc.Config{GracePeriod: time.Second, ScanInterval: 100 * time.Millisecond}}); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	state := func() *ipam.State {
		st, err := client.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	blocksOf := func(node string) int {
		n := 0
		for _, b := range state().Blocks {
			if b.Node == node {
				n++
			}
		}
		return n
	}

	if err := cs.CoreV1().Nodes().Delete(ctx, goneNode, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // grace periods pass; the pod is still bound
	if n := blocksOf(goneNode); n != 2 {
		t.Fatalf("with its pod still bound, the deleted node has %d block(s), want its 2 (IPv4, IPv6)", n)
	}
	if ips, _ := client.IPsByHandle(ctx, pods[goneNode].handle); len(ips) != 2 {
		t.Fatalf("the pod bound to the deleted node holds %v, want its address", ips)
	}

	if err := cs.CoreV1().Pods(ns).Delete(ctx, pods[goneNode].name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted node's affinities and blocks to go", func() bool {
		st := state()
		return !slices.Contains(st.AffinityNodes, goneNode) && blocksOf(goneNode) == 0 && len(st.Blocks) == 2
	})
	if ips, _ := client.IPsByHandle(ctx, pods[goneNode].handle); len(ips) != 0 {
		t.Errorf("the deleted pod still holds %v", ips)
	}
	if ips, _ := client.IPsByHandle(ctx, pods[keepNode].handle); len(ips) != 2 || blocksOf(keepNode) != 2 {
		t.Errorf("the other node's pod holds %v and the node %d block(s), want 2 and 2", ips, blocksOf(keepNode))
	}
}
