// Package reliability proves, with the real binaries in serval-lab
// namespaces, that Serval keeps packets flowing and policy enforced
// through faults (datastore, agent, host, IPAM) and refuses attacks
// (spoofing, reaching host services, wrong BGP password, leaked secrets).
// docs/RELIABILITY.md lists every property and the test that checks it.
//
// The tests need root and skip without it. TestMain builds the binaries
// once into a temporary directory.
package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labtest"
	"github.com/servalnet/serval/internal/roottest"
)

var binDir string // the built binaries

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Getenv(envIPAMChild) != "" {
		// This process is an IPAM worker of TestIPAMKilledMidAllocation.
		if err := ipamChild(); err != nil {
			fmt.Fprintln(os.Stderr, "ipam worker:", err)
			return 1
		}
		return 0
	}
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-lab", "./cmd/serval-node"}
	return labtest.Main(m, "reliability", cmds, func(dir, _ string) error {
		binDir = dir
		return nil
	})
}

var needRoot = labtest.NeedRoot

// needBinary fails t unless the declared dependency name is installed.
func needBinary(t *testing.T, name string) {
	t.Helper()
	pkg := map[string]string{"etcd": "etcd-server", "bird": "bird2", "iperf3": "iperf3"}[name]
	if pkg == "" {
		pkg = name
	}
	roottest.NeedProgram(t, name, pkg)
}

// labName is unique to this test process and test, so parallel runs and
// other people's labs never share a namespace.
func labName(base string) string { return fmt.Sprintf("rel%s%d", base, os.Getpid()%10000) }

// upLab brings up topo (YAML without name and manifests) with manifests
// (file name → content) and removes it when the test ends.
func upLab(t *testing.T, base, topo string, manifests map[string]string) *lab.Lab {
	t.Helper()
	name := labName(base)
	dir := t.TempDir()
	var files []string
	for f, content := range manifests {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	text := topo
	if len(files) > 0 {
		text += "\nmanifests: [" + strings.Join(files, ", ") + "]\n"
	}
	return labtest.Up(t, name, text, labtest.Options(t, binDir), 2*time.Minute)
}

// Policies used by several tests.
const (
	// openProfile lets everything in and out of the workloads that carry it.
	openProfile = `apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: open}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
`
)

var (
	icmp = lab.ProbeSpec{Proto: "icmp", Timeout: time.Second}
	tcp  = func(port int) lab.ProbeSpec { return lab.ProbeSpec{Proto: "tcp", Port: port, Timeout: time.Second} }
)

// probe reports whether from reaches to.
func probe(t *testing.T, l *lab.Lab, from, to string, spec lab.ProbeSpec) bool {
	t.Helper()
	ok, err := l.Probe(context.Background(), from, to, spec)
	if err != nil {
		t.Fatalf("probe %s -> %s (%s): %v", from, to, spec, err)
	}
	return ok
}

// eventually polls cond every 200 ms until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantReach checks from → to against want, allowing a few seconds for
// policy to reach the kernel.
func wantReach(t *testing.T, l *lab.Lab, from, to string, spec lab.ProbeSpec, want bool, why string) {
	t.Helper()
	if !eventually(10*time.Second, func() bool { return probe(t, l, from, to, spec) == want }) {
		t.Errorf("%s -> %s (%s): reachable = %v, want %v (%s)", from, to, spec, !want, want, why)
	}
}

// health GETs path (/readiness, /liveness) of host's serval-node from
// inside the host's namespace and returns the HTTP status code.
func health(l *lab.Lab, host, path string) (int, error) { return healthNS(l.Netns(host), path) }

// healthNS GETs path of the serval-node of namespace ns.
func healthNS(ns, path string) (int, error) {
	var status string
	err := lab.InNetns(ns, func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", lab.AgentHealthPort), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path); err != nil {
			return err
		}
		status, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		return 0, err
	}
	var code int
	if f := strings.Fields(status); len(f) >= 2 {
		fmt.Sscan(f[1], &code)
	}
	return code, nil
}

// nsExec runs argv in namespace ns.
func nsExec(ctx context.Context, ns string, argv ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), ns, err, out)
	}
	return out, nil
}

// workloadIP is the address of workload w.
func workloadIP(t *testing.T, l *lab.Lab, w string) string {
	t.Helper()
	e, err := l.Resolve(w)
	if err != nil || !e.IP.IsValid() {
		t.Fatalf("address of %s: %v", w, err)
	}
	return e.IP.String()
}

// routesIn is the IPv4 routing table of namespace ns, for messages.
func routesIn(t *testing.T, ns string) string {
	t.Helper()
	out, err := nsExec(context.Background(), ns, "ip", "-4", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func itoa(i int) string { return fmt.Sprint(i) }
