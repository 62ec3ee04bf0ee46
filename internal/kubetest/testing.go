package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// kubectlTimeout bounds one kubectl command.
const kubectlTimeout = 2 * time.Minute

// logTailBytes is how much of the API server's log a failure prints.
const logTailBytes = 16 << 10

// Start starts a cluster for t alone and stops it when t ends; when t
// failed, the end of the API server's log is logged first. A missing
// binary or a cluster that does not start fails t. For a cluster shared
// by a package's tests, use Main and Shared.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := New(t.Context(), Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("starting a test Kubernetes API server: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the test failed; last lines of the API server's log %s:\n%s", c.LogFile, c.LogTail(logTailBytes))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the test Kubernetes API server: %v", err)
		}
	})
	return c
}

// testLogger logs through t while t runs.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// The cluster Shared hands out, started on first use, stopped by Main.
var shared struct {
	sync.Mutex
	inMain  bool
	cluster *Cluster
	err     error
	tried   bool
}

// Main runs a package's tests with one API server shared by every test
// that calls Shared, and stops it afterwards. Call it from TestMain:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// The server starts only when a test asks for it, so `go test -run` of
// tests that do not need it costs nothing. When a test failed, Main prints
// the end of the API server's log.
func Main(m *testing.M) {
	shared.Lock()
	shared.inMain = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	c := shared.cluster
	shared.cluster = nil
	shared.Unlock()
	if c != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "kubetest: a test failed; last lines of the API server's log %s:\n%s\n", c.LogFile, c.LogTail(logTailBytes))
		}
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: stopping the shared API server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Shared returns the package's shared cluster, starting it on first use.
// It fails t if the package's TestMain does not call Main (the cluster
// would never be stopped) or if the cluster cannot start; a failed start
// is not retried, every later caller fails with the same error. Tests
// sharing a cluster should keep to namespaces and names of their own (see
// Namespace).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		t.Fatal("kubetest.Shared needs the package's TestMain to call kubetest.Main(m), which stops the shared API server")
	}
	if !shared.tried {
		shared.tried = true
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ctx, cancel := context.WithTimeout(context.Background(), DefaultStartTimeout)
		shared.cluster, shared.err = New(ctx, Options{Logger: log})
		cancel()
		if shared.err == nil {
			t.Logf("shared test Kubernetes API server at %s ready in %v (files in %s)", shared.cluster.URL, shared.cluster.StartDuration.Round(time.Millisecond), shared.cluster.Dir)
		}
	}
	if shared.err != nil {
		t.Fatalf("starting the shared test Kubernetes API server: %v", shared.err)
	}
	return shared.cluster
}

// Namespace creates a namespace with a unique name starting with prefix,
// and deletes it when t ends (without kube-controller-manager a deleted
// namespace stays Terminating, its objects left in place; the name is never
// reused). It returns the name.
func (c *Cluster) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	client, err := corev1client.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatalf("client of %s: %v", c.URL, err)
	}
	ns, err := client.Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a namespace %s-...: %v", prefix, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := client.Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// KubectlPath is the path of the kubectl binary.
func (c *Cluster) KubectlPath() string { return filepath.Join(c.binDir, "kubectl") }

// Kubectl runs kubectl with args against the cluster as the admin and
// returns its standard output; a failure's error names the command and
// holds its standard error.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.KubectlStdin(nil, args...)
}

// KubectlStdin is Kubectl with stdin as kubectl's standard input (for
// `apply -f -`).
func (c *Cluster) KubectlStdin(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	full := append([]string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, c.KubectlPath(), full...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + c.Dir, "KUBECONFIG=" + c.Kubeconfig}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// MustKubectl is Kubectl that fails t when kubectl fails.
func (c *Cluster) MustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
