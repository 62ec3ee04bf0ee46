package controllers_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/kubetest"
	"github.com/servalnet/serval/internal/testbin"
)

// TestBinary runs the serval-controllers binary as it is deployed (its
// flags, protobuf for Pods, Nodes and Leases, IPAM in the kubernetes
// datastore): it takes the Lease, serves /metrics, and releases a
// force-deleted pod's addresses.
func TestBinary(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t, "ipamgc-bin")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := clientset.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the default service account: %v", err)
	}
	node := ns + "-node"
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node %s: %v", node, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })
	installCRDs(t, ctx, c)
	ds, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	for _, p := range []*api.IPPool{
		{TypeMeta: api.TypeMeta{Kind: "IPPool", APIVersion: api.APIVersion}, ObjectMeta: api.ObjectMeta{Name: "bin-v4"}, Spec: api.IPPoolSpec{CIDR: "10.53.0.0/24", BlockSize: 28}},
		{TypeMeta: api.TypeMeta{Kind: "IPPool", APIVersion: api.APIVersion}, ObjectMeta: api.ObjectMeta{Name: "bin-v6"}, Spec: api.IPPoolSpec{CIDR: "fd00:53::/120", BlockSize: 124}},
	} {
		if _, err := ds.Create(ctx, p); err != nil {
			t.Fatalf("creating pool %s: %v", p.Name, err)
		}
		t.Cleanup(func() { _, _ = ds.Delete(context.Background(), api.KeyOf(p), "") })
	}
	client := ipam.New(ds, ipam.Config{})
	live := &testPod{name: "live", node: node, handle: "k8s-pod-network.ctr-bin-live"}
	gone := &testPod{name: "gone", node: node, handle: "k8s-pod-network.ctr-bin-gone"}
	for _, p := range []*testPod{live, gone} {
		if err := attachPod(ctx, cs, client, ns, p, true); err != nil {
			t.Fatal(err)
		}
	}

	_, dir, err := testbin.Build("serval-controllers", "./cmd/serval-controllers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := freeAddr(t)
	var out syncBuffer
	cmd := exec.Command(filepath.Join(dir, "serval-controllers"), "--kubeconfig", c.Kubeconfig, "--datastore-type", "kubernetes",
		"--lease-namespace", ns, "--identity", "bin", "--metrics-addr", addr,
		"--ipam-gc-grace-period", "1s", "--ipam-gc-interval", "200ms")
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "POD_NAMESPACE=", "POD_NAME=")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("serval-controllers exited with %v after SIGTERM", err)
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Error("serval-controllers did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("serval-controllers output:\n%s", out.String())
		}
	}()

	metrics := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, "serval-controllers to lead", func() bool { return strings.Contains(metrics(), "serval_controllers_leader 1") })
	if err := cs.CoreV1().Pods(ns).Delete(ctx, gone.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	holds := func(p *testPod) int {
		ips, err := client.IPsByHandle(ctx, p.handle)
		if err != nil {
			t.Fatal(err)
		}
		return len(ips)
	}
	waitFor(t, "the deleted pod's addresses to be released", func() bool { return holds(gone) == 0 })
	if n := holds(live); n != 2 {
		t.Errorf("the live pod holds %d address(es), want 2", n)
	}
	// The counter moves just after each release is written: the handle
	// may be empty a moment before the metric says so.
	const reclaimed = `serval_ipam_gc_reclaimed_total{kind="address"} 2`
	waitFor(t, "the metrics to count the 2 addresses reclaimed", func() bool { return strings.Contains(metrics(), reclaimed) })
	lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, "serval-controllers", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "bin" {
		t.Errorf("Lease: %v, %v; want held by bin", lease, err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
