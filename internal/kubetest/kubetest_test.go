package kubetest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestMain(m *testing.M) { Main(m) }

func TestMissingBinaryIsAnError(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "noexec")
	if err := os.MkdirAll(notExec, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kube-apiserver", "kubectl"} {
		if err := os.WriteFile(filepath.Join(notExec, name), []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, binDir, missing string
	}{
		{"empty directory", dir, "kube-apiserver"},
		{"no such directory", filepath.Join(dir, "absent"), "kube-apiserver"},
		{"not executable", notExec, "kube-apiserver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(t.Context(), Options{BinDir: tc.binDir, Dir: t.TempDir()})
			if err == nil {
				c.Stop()
				t.Fatal("New started a cluster without binaries")
			}
			var missing *MissingBinaryError
			if !errors.As(err, &missing) {
				t.Fatalf("error %v is not a *MissingBinaryError", err)
			}
			if want := filepath.Join(tc.binDir, tc.missing); missing.Path != want {
				t.Errorf("missing binary %s, want %s", missing.Path, want)
			}
			if !strings.Contains(err.Error(), "scripts/k8s-binaries.sh") {
				t.Errorf("error %q does not say how to build the binaries", err)
			}
		})
	}
}

func clientset(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client for %s: %v", cfg.Host, err)
	}
	return cs
}

func TestKubectlReportsVersions(t *testing.T) {
	c := Shared(t)
	out := c.MustKubectl(t, "version", "-o", "json")
	var v struct {
		Client struct{ GitVersion string } `json:"clientVersion"`
		Server struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version output %q: %v", out, err)
	}
	if v.Client.GitVersion != Version || v.Server.GitVersion != Version {
		t.Errorf("kubectl version: client %q, server %q; want %s for both", v.Client.GitVersion, v.Server.GitVersion, Version)
	}
}

func TestNamespaceServiceAccountPod(t *testing.T) {
	c := Shared(t)
	ctx := t.Context()
	cs := clientset(t, c.RESTConfig())

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "kubetest-", Labels: map[string]string{"team": "serval"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	got, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading namespace %s back: %v", ns.Name, err)
	}
	// The API server itself adds the name label.
	if got.Labels["team"] != "serval" || got.Labels["kubernetes.io/metadata.name"] != ns.Name {
		t.Errorf("namespace %s labels %v", ns.Name, got.Labels)
	}

	// No kube-controller-manager makes the default ServiceAccount: the test
	// makes the one its pod names.
	sa, err := cs.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: "web", Labels: map[string]string{"role": "frontend"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service account %s/web: %v", ns.Name, err)
	}
	pod, err := cs.CoreV1().Pods(ns.Name).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa.Name,
			NodeName:           "node-a",
			Containers: []corev1.Container{{
				Name: "web", Image: "example.invalid/web:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/web-0: %v", ns.Name, err)
	}
	if pod.Spec.ServiceAccountName != "web" || pod.Spec.Containers[0].Ports[0].Name != "http" {
		t.Errorf("pod as stored: service account %q, ports %v", pod.Spec.ServiceAccountName, pod.Spec.Containers[0].Ports)
	}
	// The ServiceAccount admission plugin ran: it mounts the projected token.
	var projected bool
	for _, v := range pod.Spec.Volumes {
		projected = projected || (v.Projected != nil && strings.HasPrefix(v.Name, "kube-api-access-"))
	}
	if !projected {
		t.Errorf("pod %s/web-0 has no kube-api-access volume: volumes %v", ns.Name, pod.Spec.Volumes)
	}
	if out := c.MustKubectl(t, "get", "pod", "web-0", "-n", ns.Name, "-o", "jsonpath={.spec.nodeName}"); out != "node-a" {
		t.Errorf("kubectl get pod: nodeName %q, want node-a", out)
	}

	// A token of the service account, signed with the key the harness made,
	// authenticates as the service account.
	tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token of %s/web: %v", ns.Name, err)
	}
	saCfg := c.RESTConfig()
	saCfg.BearerToken = tr.Status.Token
	review, err := clientset(t, saCfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self-subject review with the token of %s/web: %v", ns.Name, err)
	}
	if want := "system:serviceaccount:" + ns.Name + ":web"; review.Status.UserInfo.Username != want {
		t.Errorf("token of %s/web authenticates as %q, want %q", ns.Name, review.Status.UserInfo.Username, want)
	}
}

// TestAdminCredentials: the token and the client certificate both
// authenticate as the admin, in system:masters.
func TestAdminCredentials(t *testing.T) {
	c := Shared(t)
	byCert := c.RESTConfig()
	byCert.BearerToken = ""
	byCert.CertFile, byCert.KeyFile = c.AdminCertFile, c.AdminKeyFile
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
	}{
		{"token", c.RESTConfig()},
		{"client certificate", byCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			review, err := clientset(t, tc.cfg).AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("self-subject review: %v", err)
			}
			u := review.Status.UserInfo
			if u.Username != AdminUser || !slices.Contains(u.Groups, "system:masters") {
				t.Errorf("authenticated as %q in %v, want %q in system:masters", u.Username, u.Groups, AdminUser)
			}
		})
	}
}

// TestRBAC: the admin may do anything; another user only what RBAC grants.
func TestRBAC(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t, "rbac")
	for _, tc := range []struct {
		name      string
		cfg       *rest.Config
		forbidden bool
	}{
		{"admin", c.RESTConfig(), false},
		{"user without roles", c.UserConfig("alice", "developers"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clientset(t, tc.cfg).CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
			if tc.forbidden != apierrors.IsForbidden(err) || (!tc.forbidden && err != nil) {
				t.Errorf("listing pods in %s: %v (forbidden expected: %v)", ns, err, tc.forbidden)
			}
		})
	}
}

// TestDualStackService: a Service asking for both families gets a cluster IP
// from each service range.
func TestDualStackService(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t, "dualstack")
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc, err := clientset(t, c.RESTConfig()).CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			IPFamilyPolicy: &policy,
			IPFamilies:     []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
			Selector:       map[string]string{"app": "web"},
			Ports:          []corev1.ServicePort{{Port: 80}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a dual-stack service: %v", err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("dual-stack service cluster IPs %v, want one of each family", svc.Spec.ClusterIPs)
	}
	for i, cidr := range []string{ServiceCIDRv4, ServiceCIDRv6} {
		_, n, _ := net.ParseCIDR(cidr)
		if ip := net.ParseIP(svc.Spec.ClusterIPs[i]); ip == nil || !n.Contains(ip) {
			t.Errorf("cluster IP %d %q not in %s", i, svc.Spec.ClusterIPs[i], cidr)
		}
	}
}

func TestKubectlApplyFromStdin(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t, "apply")
	const manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: strict\n"
	if _, err := c.KubectlStdin(strings.NewReader(manifest), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if out := c.MustKubectl(t, "get", "configmap", "settings", "-n", ns, "-o", "jsonpath={.data.mode}"); out != "strict" {
		t.Errorf("configmap data mode %q, want strict", out)
	}
	_, err := c.Kubectl("get", "configmap", "absent", "-n", ns)
	if err == nil || !strings.Contains(err.Error(), "NotFound") && !strings.Contains(err.Error(), "not found") {
		t.Errorf("kubectl get of a missing configmap: %v, want a not-found error", err)
	}
}

// TestStopEndsEverything: a cluster of its own, stopped, leaves no process,
// no listener and no directory behind.
func TestStopEndsEverything(t *testing.T) {
	c, err := New(t.Context(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("starting a test cluster: %v", err)
	}
	t.Logf("kube-apiserver ready in %v", c.StartDuration.Round(time.Millisecond))
	pid := c.cmd.Process.Pid
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kube-apiserver pid %d still there after Stop: %v", pid, err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("directory %s still there after Stop: %v", c.Dir, err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after Stop", c.URL)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestRemoveStaleDirs: a cluster directory whose process is gone is removed;
// a living process's, or one without a readable owner, is left alone.
func TestRemoveStaleDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatalf("running true: %v", err)
	}
	cases := []struct {
		dir   string
		owner string // "" for no owner file
		kept  bool
	}{
		{"dead-owner", strconv.Itoa(dead.Process.Pid), false},
		{"living-owner", strconv.Itoa(os.Getpid()), true},
		{"no-owner-file", "", true},
		{"garbage-owner", "not-a-pid", true},
	}
	for _, tc := range cases {
		dir := filepath.Join(tmp, tempDirPrefix+tc.dir)
		if err := os.MkdirAll(filepath.Join(dir, "etcd"), 0o700); err != nil {
			t.Fatal(err)
		}
		if tc.owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tc.owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	removeStaleDirs(testLogger(t))
	for _, tc := range cases {
		_, err := os.Stat(filepath.Join(tmp, tempDirPrefix+tc.dir))
		if kept := err == nil; kept != tc.kept {
			t.Errorf("%s: directory kept %v, want %v (%v)", tc.dir, kept, tc.kept, err)
		}
	}
}

// TestStartFailureReportsTheLog: an API server that cannot start makes New
// fail with the end of its log.
func TestStartFailureReportsTheLog(t *testing.T) {
	dir := t.TempDir()
	c, err := New(t.Context(), Options{Dir: dir, Logger: testLogger(t), ExtraArgs: []string{"--no-such-flag=1"}})
	if err == nil {
		c.Stop()
		t.Fatal("New succeeded with an unknown API server flag")
	}
	if c != nil {
		t.Errorf("New returned a cluster with its error %v", err)
	}
	for _, want := range []string{"exited before it was ready", "unknown flag: --no-such-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
