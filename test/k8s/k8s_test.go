package k8s

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labtest"
)

// convergeTimeout bounds every wait for the network to reach a state:
// generous, as the machine is shared; nothing here measures speed.
const convergeTimeout = 3 * time.Minute

// topology: two hosts, pods of namespace shop (web1, web2) and data (db1,
// db2) on both, one of them with an address of its own through the
// ipAddrs annotation, and a pod of namespace ops.
const topology = `
datastore: {kind: kubernetes}
hosts:
  - {name: h1, address: 172.30.9.101/24}
  - {name: h2, address: 172.30.9.102/24}
workloads:
  - {name: web1, host: h1, namespace: shop, labels: {app: web}}
  - {name: web2, host: h2, namespace: shop, labels: {app: web}, address: 192.168.40.7}
  - {name: db1, host: h1, namespace: data, labels: {app: db}}
  - {name: db2, host: h2, namespace: data, labels: {app: db}}
  - {name: ops1, host: h2, namespace: ops, labels: {app: tools}}
`

func upLab(t *testing.T) (*lab.Lab, lab.Options) {
	t.Helper()
	labtest.NeedRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	opts := labtest.Options(t, binDir)
	return labtest.Up(t, "k8s"+hex.EncodeToString(b), topology, opts, 5*time.Minute), opts
}

// reach is the expected matrix: reach(from, to).
type reach func(from, to string) bool

// waitMatrix probes every pair until the matrix is want's, failing t with
// the last differences when it is not within convergeTimeout.
// Cells where ignore (when not nil) is true are not compared.
func waitMatrix(t *testing.T, l *lab.Lab, what string, want, ignore reach) {
	t.Helper()
	spec := lab.ProbeSpec{Proto: "tcp", Port: 80, Timeout: time.Second}
	deadline := time.Now().Add(convergeTimeout)
	var diffs []string
	for {
		names, got, err := l.Matrix(context.Background(), spec)
		if err != nil {
			t.Fatalf("%s: matrix: %v", what, err)
		}
		diffs = diffs[:0]
		for i, from := range names {
			for j, to := range names {
				if i == j || ignore != nil && ignore(from, to) {
					continue
				}
				if got[i][j] != want(from, to) {
					diffs = append(diffs, fmt.Sprintf("%s→%s: reached %v, want %v", from, to, got[i][j], want(from, to)))
				}
			}
		}
		if len(diffs) == 0 {
			t.Logf("%s: matrix as expected", what)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the matrix still differs after %s:\n  %s", what, convergeTimeout, strings.Join(diffs, "\n  "))
		}
		time.Sleep(time.Second)
	}
}

// namespaceOf maps workload names to their namespaces.
func namespaceOf(l *lab.Lab) map[string]string {
	m := map[string]string{}
	for _, w := range l.State.Topology.Workloads {
		m[w.Name] = w.Namespace
	}
	return m
}

// endpoints lists "namespace/pod@node" of the WorkloadEndpoints servalctl
// shows in every namespace, each checked to carry its namespace and
// orchestrator labels as Calico derives them.
func endpoints(t *testing.T, l *lab.Lab) []string {
	t.Helper()
	out, err := l.Servalctl(context.Background(), nil, "get", "workloadendpoints", "-A", "-o", "json")
	if err != nil {
		t.Fatalf("servalctl get workloadendpoints: %v\n%s", err, out)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Pod          string `json:"pod"`
				Node         string `json:"node"`
				Orchestrator string `json:"orchestrator"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("servalctl get workloadendpoints -o json: %v\n%s", err, out)
	}
	var eps []string
	for _, it := range list.Items {
		if it.Metadata.Labels["projectcalico.org/namespace"] != it.Metadata.Namespace || it.Metadata.Labels["projectcalico.org/orchestrator"] != "k8s" {
			t.Errorf("endpoint of pod %s/%s: labels %v lack projectcalico.org/namespace=%s and projectcalico.org/orchestrator=k8s", it.Metadata.Namespace, it.Spec.Pod, it.Metadata.Labels, it.Metadata.Namespace)
		}
		eps = append(eps, it.Metadata.Namespace+"/"+it.Spec.Pod+"@"+it.Spec.Node)
	}
	sort.Strings(eps)
	return eps
}

// waitEndpoints waits until servalctl shows exactly want.
func waitEndpoints(t *testing.T, l *lab.Lab, want []string) {
	t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(convergeTimeout)
	for {
		got := endpoints(t, l)
		if strings.Join(got, " ") == strings.Join(want, " ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("servalctl get workloadendpoints -A shows %v, want %v", got, want)
		}
		time.Sleep(time.Second)
	}
}

func labelNamespace(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting namespace %s: %v", name, err)
	}
	ns.Labels = map[string]string{corev1.LabelMetadataName: name}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("labelling namespace %s: %v", name, err)
	}
}

// TestKubernetesDatastore: a lab on the kubernetes datastore reaches every
// pod from every pod; a NetworkPolicy (default-deny ingress in data, and an
// allow from the namespaces labelled team=frontend) makes the matrix what
// Kubernetes says; relabelling namespaces moves access with the label; a
// deleted pod's endpoint goes.
func TestKubernetesDatastore(t *testing.T) {
	start := time.Now()
	l, opts := upLab(t)
	t.Logf("kubernetes lab up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	cs, err := l.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	// serval-lab kubeconfig prints the admin kubeconfig, which kubectl
	// (run in the datastore namespace) uses to see the pods bound to
	// their hosts.
	out, err := exec.Command(filepath.Join(binDir, "serval-lab"), "--run-root", opts.RunRoot, "--bin-dir", binDir, "--name", l.Name, "kubeconfig").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != l.KubeconfigPath() {
		t.Errorf("serval-lab kubeconfig: %v: %q, want %s", err, out, l.KubeconfigPath())
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	ns := namespaceOf(l)
	var wantEPs []string
	for _, w := range l.State.Topology.Workloads {
		wantEPs = append(wantEPs, w.Namespace+"/"+w.Name+"@"+w.Host)
	}
	bound := map[string]string{}
	for _, p := range pods.Items {
		bound[p.Namespace+"/"+p.Name] = p.Spec.NodeName
		if ip := l.State.Workloads[p.Name]; ip != nil && p.Annotations["cni.projectcalico.org/podIP"] != ip.IP+"/32" {
			t.Errorf("pod %s/%s: podIP annotation %q, want %s/32 (what CNI ADD gave)", p.Namespace, p.Name, p.Annotations["cni.projectcalico.org/podIP"], ip.IP)
		}
	}
	for _, w := range l.State.Topology.Workloads {
		if bound[w.Namespace+"/"+w.Name] != w.Host {
			t.Errorf("pod %s/%s bound to %q, want %s", w.Namespace, w.Name, bound[w.Namespace+"/"+w.Name], w.Host)
		}
	}
	if ip := l.State.Workloads["web2"]; ip == nil || ip.IP != "192.168.40.7" {
		t.Errorf("web2 has %v, want the address of its ipAddrs annotation 192.168.40.7", ip)
	}
	waitEndpoints(t, l, wantEPs)

	// No policy: the namespaces' profiles allow everything.
	waitMatrix(t, l, "no policy", func(from, to string) bool { return true }, nil)

	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny-ingress", Namespace: "data"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	allow := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-frontend", Namespace: "data"},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "frontend"}},
			}}}},
		},
	}
	for _, np := range []*networkingv1.NetworkPolicy{deny, allow} {
		if _, err := cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating NetworkPolicy %s/%s: %v", np.Namespace, np.Name, err)
		}
	}
	// No namespace has the label yet: nobody reaches data, data included;
	// data's pods still reach the others (only ingress is isolated).
	frontend := func(team string) reach {
		return func(from, to string) bool {
			return ns[to] != "data" || ns[from] == team
		}
	}
	waitMatrix(t, l, "default deny in data", frontend(""), nil)

	labelNamespace(t, cs, "shop", map[string]string{"team": "frontend"})
	waitMatrix(t, l, "shop labelled team=frontend", frontend("shop"), nil)

	labelNamespace(t, cs, "shop", nil)
	labelNamespace(t, cs, "ops", map[string]string{"team": "frontend"})
	waitMatrix(t, l, "the label moved from shop to ops", frontend("ops"), nil)

	// The lab's other features work as on etcd: status shows the API
	// server, and an agent killed and started again enforces the same.
	var status bytes.Buffer
	if err := l.Status(ctx, &status); err != nil {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(status.String(), lab.KubeAPIServerID) || !strings.Contains(status.String(), "ready") {
		t.Errorf("status does not show a ready kube-apiserver:\n%s", status.String())
	}
	if err := l.AgentStop("h1", true); err != nil {
		t.Fatalf("killing serval-node on h1: %v", err)
	}
	if err := l.AgentStart(ctx, "h1"); err != nil {
		t.Fatalf("starting serval-node on h1 again: %v", err)
	}
	waitMatrix(t, l, "after serval-node on h1 restarted", frontend("ops"), nil)

	// The policies are visible, read-only, through servalctl, as Calico
	// names them.
	out2, err := l.Servalctl(ctx, nil, "get", "networkpolicies", "-n", "data", "-o", "name")
	if err != nil || !strings.Contains(string(out2), "knp.default.allow-frontend") || !strings.Contains(string(out2), "knp.default.default-deny-ingress") {
		t.Errorf("servalctl get networkpolicies -n data: %v\n%s", err, out2)
	}

	// A pod deleted through the API (no kubelet to run CNI DEL) loses its
	// endpoint, and with it its route and reachability.
	if err := cs.CoreV1().Pods("shop").Delete(ctx, "web2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatalf("deleting pod shop/web2: %v", err)
	}
	var rest []string
	for _, e := range wantEPs {
		if !strings.HasPrefix(e, "shop/web2@") {
			rest = append(rest, e)
		}
	}
	waitEndpoints(t, l, rest)
	// What web2's namespace, left behind, sends is not the question
	// (no kubelet removes it); what reaches it is.
	waitMatrix(t, l, "web2 deleted", func(from, to string) bool {
		return to != "web2" && frontend("ops")(from, to)
	}, func(from, to string) bool { return from == "web2" })
	if _, err := cs.CoreV1().Pods("shop").Get(ctx, "web2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod shop/web2 after deletion: %v, want NotFound", err)
	}

	// A workload added to the running lab is a pod of a new namespace
	// (made for it), enforced as the others; deleted through the lab (CNI
	// DEL, then the pod), it is gone from the API and from servalctl.
	if err := l.AddWorkload(ctx, lab.Workload{Name: "new1", Host: "h1", Namespace: "fresh", Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatalf("add-workload new1: %v", err)
	}
	ns["new1"] = "fresh"
	waitEndpoints(t, l, append(append([]string(nil), rest...), "fresh/new1@h1"))
	waitMatrix(t, l, "new1 added in namespace fresh", func(from, to string) bool {
		return to != "web2" && frontend("ops")(from, to)
	}, func(from, to string) bool { return from == "web2" })
	if err := l.DeleteWorkload(ctx, "new1"); err != nil {
		t.Fatalf("delete-workload new1: %v", err)
	}
	if _, err := cs.CoreV1().Pods("fresh").Get(ctx, "new1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod fresh/new1 after delete-workload: %v, want NotFound", err)
	}
	waitEndpoints(t, l, rest)
}
