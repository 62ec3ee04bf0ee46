package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labtest"
	"github.com/servalnet/serval/internal/nodestatus"
)

var binDir, repo string

func TestMain(m *testing.M) {
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-node"}
	os.Exit(labtest.Main(m, "overlay", cmds, func(dir, root string) error {
		binDir, repo = dir, root
		return nil
	}))
}

// topology: h1 and h2 on 172.31.1.0/24, h3 on 172.31.2.0/24, a static
// router between the subnets (no BGP: it never learns a workload route).
func topology(mtu int) string {
	return fmt.Sprintf(`
mtu: %d
router: {kind: static, address: 172.31.1.1/24, subnets: [172.31.2.1/24]}
hosts:
  - {name: h1, address: 172.31.1.11/24}
  - {name: h2, address: 172.31.1.12/24}
  - {name: h3, address: 172.31.2.13/24}
workloads:
  - {name: w1, host: h1, labels: {role: untrusted}}
  - {name: w2, host: h2}
  - {name: w3, host: h3, labels: {app: db}}
manifests:
  - %s
`, mtu, filepath.Join(repo, "test", "overlay", "testdata", "vxlan-always.yaml"))
}

func upLab(t *testing.T, base, topo string) *lab.Lab {
	t.Helper()
	labtest.NeedRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "ov" + base + hex.EncodeToString(b)
	opts := lab.Options{RunRoot: t.TempDir(), BinDir: binDir, Logger: labtest.Logger(t, slog.LevelWarn)}
	return labtest.Up(t, name, topo, opts, 120*time.Second)
}

// sh runs a command in namespace ns and returns its output.
func sh(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

func mustSh(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := sh(t, ns, args...)
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return out
}

// counter reads a statistic of dev in host's namespace (0 when the
// device is absent).
func counter(t *testing.T, l *lab.Lab, host, dev, stat string) int {
	t.Helper()
	out, err := sh(t, l.Netns(host), "cat", "/sys/class/net/"+dev+"/statistics/"+stat)
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(strings.TrimSpace(out), &n)
	return n
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func probe(t *testing.T, l *lab.Lab, from, to string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := l.Probe(ctx, from, to, lab.ProbeSpec{})
	if err != nil {
		t.Fatalf("probe %s -> %s: %v", from, to, err)
	}
	return ok
}

func wip(t *testing.T, l *lab.Lab, w string) netip.Addr {
	t.Helper()
	ws := l.State.Workloads[w]
	if ws == nil {
		t.Fatalf("workload %s was not created", w)
	}
	return netip.MustParseAddr(ws.IP)
}

// setMode switches the overlay pool's vxlanMode with servalctl.
func setMode(t *testing.T, l *lab.Lab, mode string) {
	t.Helper()
	setPool(t, l, "vxlanMode: "+mode)
}

// setPool applies the overlay pool with its "vxlanMode: Always" line
// replaced by modes.
func setPool(t *testing.T, l *lab.Lab, modes string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "test", "overlay", "testdata", "vxlan-always.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pool := strings.SplitN(string(data), "---", 2)[0]
	pool = strings.Replace(pool, "vxlanMode: Always", modes, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := l.Servalctl(ctx, []byte(pool), "apply", "-f", "-"); err != nil {
		t.Fatalf("servalctl apply %s: %v\n%s", modes, err, out)
	}
}

// health is host's health as `servalctl node status` reports it.
func health(t *testing.T, l *lab.Lab, host string) nodestatus.Report {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "servalctl"), "node", "status", "--socket", l.AgentSocket(host), "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("servalctl node status on %s: %v\n%s", host, err, out)
	}
	var rep nodestatus.StatusReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("servalctl node status on %s: %v\n%s", host, err, out)
	}
	return rep.Health
}

// statusText is `servalctl node status` on host as an operator reads it.
func statusText(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "servalctl"), "node", "status", "--socket", l.AgentSocket(host)).CombinedOutput()
	if err != nil {
		t.Fatalf("servalctl node status on %s: %v\n%s", host, err, out)
	}
	return string(out)
}
