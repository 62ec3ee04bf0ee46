package kubecluster

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/kubeapi"
	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labimage"
	"github.com/servalnet/serval/internal/labtest"
)

// topology is lab/kubernetes.yaml's cluster: two nodes and a BGP router.
const topology = `
router: {kind: bird, asNumber: 64513, address: 172.17.8.1/24}
hosts:
  - {name: node1, address: 172.17.8.101/24}
  - {name: node2, address: 172.17.8.102/24}
kubernetes: {}
`

// upCluster brings up the test's cluster lab, removed when t ends.
func upCluster(t *testing.T, name string) *lab.Lab {
	labtest.NeedRoot(t)
	return labtest.Up(t, name, topology, labtest.Options(t, binDir), 4*time.Minute)
}

// kubectl runs kubectl against l's API server from the lab's datastore
// namespace (the only place its address is reached from).
func kubectl(ctx context.Context, l *lab.Lab, stdin string, args ...string) (string, error) {
	bin, err := kubeapi.Binary("", "kubectl")
	if err != nil {
		return "", err
	}
	argv := append([]string{"netns", "exec", l.Netns("datastore"), bin, "--kubeconfig", l.KubeconfigPath()}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustKubectl(t *testing.T, l *lab.Lab, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectl(t.Context(), l, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const workloads = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  nodeName: node1
  containers: [{name: c, image: "` + labimage.AgnhostName + `", args: [serve-hostname, --tcp, --http=false, --port, "80"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec:
  nodeName: node2
  containers: [{name: c, image: "` + labimage.AgnhostName + `"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
`

const denyWeb = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
`

// TestPodsServicesAndPolicy: pods on two nodes, started by kubelet, reach
// each other directly and through a Service's ClusterIP (kube-proxy's
// DNAT); a NetworkPolicy denying the server's ingress cuts both, and
// deleting it restores them. The router learned the pods' blocks by BGP.
func TestPodsServicesAndPolicy(t *testing.T) {
	l := upCluster(t, "kcpods")
	mustKubectl(t, l, workloads, "apply", "-f", "-")
	mustKubectl(t, l, "", "wait", "-n", "shop", "--for=condition=Ready", "pod/web", "pod/client", "--timeout=120s")
	webIP := strings.TrimSpace(mustKubectl(t, l, "", "get", "-n", "shop", "pod/web", "-o", "jsonpath={.status.podIP}"))
	svcIP := strings.TrimSpace(mustKubectl(t, l, "", "get", "-n", "shop", "service/web", "-o", "jsonpath={.spec.clusterIP}"))
	if webIP == "" || svcIP == "" {
		t.Fatalf("pod IP %q, service IP %q", webIP, svcIP)
	}
	targets := map[string]string{"pod " + webIP: webIP + ":80", "service " + svcIP: svcIP + ":8080"}
	// connect runs agnhost connect in the client pod (kubectl exec: API
	// server, kubelet, containerd).
	connect := func(addr string) error {
		_, err := kubectl(t.Context(), l, "", "exec", "-n", "shop", "client", "--", "/agnhost", "connect", addr, "--timeout=3s", "--protocol=tcp")
		return err
	}
	expect := func(when string, allowed bool) {
		t.Helper()
		for what, addr := range targets {
			// Policy reaches the agents asynchronously: give it a few
			// seconds either way.
			var err error
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
				if err = connect(addr); (err == nil) == allowed {
					break
				}
			}
			if (err == nil) != allowed {
				t.Errorf("%s: client to %s (%s): allowed=%v, want %v (%v)", when, what, addr, err == nil, allowed, err)
			}
		}
	}
	expect("no policy", true)
	mustKubectl(t, l, denyWeb, "apply", "-f", "-")
	expect("deny-web applied", false)
	mustKubectl(t, l, "", "delete", "-n", "shop", "networkpolicy/deny-web")
	expect("deny-web deleted", true)

	routes, err := l.RouterRoutes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	block := webIP[:strings.LastIndex(webIP, ".")]
	if !strings.Contains(routes, block) {
		t.Errorf("the router has no route towards the pod %s's block:\n%s", webIP, routes)
	}
}

// upstreamFocus is a representative handful of the e2e suite's
// NetworkPolicy tests (the whole focus runs in `make conformance`).
var upstreamFocus = []string{
	"should support a 'default-deny-ingress' policy",
	"should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
	"should enforce policy based on PodSelector and NamespaceSelector",
	"should enforce policy based on Ports",
}

// TestUpstreamNetworkPolicySuite runs upstream's e2e.test (k8s.io/kubernetes
// test/e2e, built by scripts/k8s-binaries.sh) on the cluster lab, focused on
// a handful of [Feature:NetworkPolicy] tests, and checks its JUnit report:
// every selected test ran and passed. SCTP is skipped: this kernel has no
// SCTP sockets.
func TestUpstreamNetworkPolicySuite(t *testing.T) {
	l := upCluster(t, "kce2e")
	e2e, err := kubeapi.Binary("", "e2e.test")
	if err != nil {
		t.Fatal(err)
	}
	report := t.TempDir()
	focus := make([]string, len(upstreamFocus))
	for i, f := range upstreamFocus {
		focus[i] = regexpQuote(f)
	}
	cmd := exec.CommandContext(t.Context(), "ip", "netns", "exec", l.Netns("datastore"), e2e,
		"--kubeconfig="+l.KubeconfigPath(), "--provider=local",
		"--ginkgo.focus=("+strings.Join(focus, "|")+").*\\[Feature:NetworkPolicy\\]",
		"--ginkgo.skip=SCTPConnectivity",
		"--ginkgo.no-color", "--ginkgo.timeout=20m",
		"--report-dir="+report)
	cmd.Dir = report
	start := time.Now()
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(report, "e2e.log"), out, 0o644)
	t.Logf("e2e.test ran in %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Errorf("e2e.test: %v; end of its output:\n%s", err, tailOf(string(out), 6000))
	}
	suites := readJUnit(t, report)
	var ran, failed int
	for _, tc := range suites.Cases {
		// The report holds the suite's own steps too ([ReportAfterSuite]
		// ...): the tests are the [It] cases.
		if tc.Skipped != nil || !strings.HasPrefix(tc.Name, "[It]") {
			continue
		}
		ran++
		if tc.Failure != nil || tc.Error != nil {
			failed++
			t.Errorf("upstream test failed: %s", tc.Name)
		} else {
			t.Logf("upstream test passed: %s (%ss)", tc.Name, tc.Time)
		}
	}
	// The focus matches TCP and UDP variants of each test.
	if ran < len(upstreamFocus) {
		t.Errorf("e2e.test ran %d tests, want at least %d (one per focus): the focus no longer matches the suite", ran, len(upstreamFocus))
	}
}

func regexpQuote(s string) string {
	r := strings.NewReplacer("(", `\(`, ")", `\)`, ".", `\.`, "'", ".")
	return r.Replace(s)
}

type junitCase struct {
	Name    string    `xml:"name,attr"`
	Time    string    `xml:"time,attr"`
	Skipped *struct{} `xml:"skipped"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
}

type junitSuites struct {
	Cases []junitCase `xml:"testsuite>testcase"`
}

func readJUnit(t *testing.T, dir string) junitSuites {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "junit*.xml"))
	if len(files) == 0 {
		t.Fatalf("e2e.test wrote no JUnit report in %s", dir)
	}
	var all junitSuites
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s junitSuites
		if err := xml.Unmarshal(data, &s); err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		all.Cases = append(all.Cases, s.Cases...)
	}
	return all
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
