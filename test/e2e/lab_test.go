package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

const twoHostsWithRouter = `
router: {kind: bird, asNumber: 64513, address: 172.17.8.1/24}
hosts:
  - {name: host1, address: 172.17.8.101/24}
  - {name: host2, address: 172.17.8.102/24, asNumber: 64514}
workloads:
  - {name: A, host: host1, address: 192.168.1.1, labels: {group: GROUP1}, profiles: [group1]}
  - {name: B, host: host1, labels: {group: GROUP2}}
  - {name: C, host: host2, namespace: prod, labels: {role: db}}
manifests: [testdata/open.yaml]
`

// TestLabUpDown brings up two hosts, a BIRD router and three workloads,
// checks what was built and that workloads on one host reach each other
// (the CNI plugin's /32 routes and proxy ARP suffice), changes workloads
// through the CLI, and checks that down leaves nothing behind.
func TestLabUpDown(t *testing.T) {
	needRoot(t)
	name := labName(t, "ud")
	start := time.Now()
	l, opts := upLab(t, name, twoHostsWithRouter)
	t.Logf("up took %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	for _, m := range []string{"fabric", "datastore", "router", "host1", "host2", "A", "B", "C"} {
		if _, err := os.Stat("/run/netns/" + l.Netns(m)); err != nil {
			t.Errorf("namespace of %s: %v", m, err)
		}
	}
	if got := l.State.Workloads["A"].IP; got != "192.168.1.1" {
		t.Errorf("A has %s, want its static 192.168.1.1", got)
	}
	ipB, err := netip.ParseAddr(l.State.Workloads["B"].IP)
	if err != nil || !netip.MustParsePrefix("192.168.0.0/16").Contains(ipB) {
		t.Errorf("B has %q, want an address of the default pool 192.168.0.0/16", l.State.Workloads["B"].IP)
	}
	if _, err := l.Birdc(ctx, "show", "status"); err != nil {
		t.Errorf("BIRD does not answer: %v", err)
	}
	// The endpoints carry what the topology says, through CNI.
	out, err := l.Servalctl(ctx, nil, "get", "workloadendpoints", "-A", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"group: GROUP1", "- group1", "role: db", "namespace: prod", "kns.prod", "node: host2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("workload endpoints lack %q:\n%s", want, out)
		}
	}

	t.Run("same host", func(t *testing.T) {
		for _, p := range []struct{ from, to, proto string }{
			{"A", "B", "icmp"}, {"B", "A", "icmp"}, {"A", "B", "tcp"}, {"B", "A", "udp"},
			{"host1", "A", "icmp"}, {"A", "host1", "tcp"},
		} {
			ok, err := l.Probe(ctx, p.from, p.to, lab.ProbeSpec{Proto: p.proto, Port: 8080, Timeout: 3 * time.Second})
			if err != nil || !ok {
				t.Errorf("%s -> %s %s: allowed=%v err=%v, want allowed", p.from, p.to, p.proto, ok, err)
			}
		}
	})

	t.Run("cross host", func(t *testing.T) {
		needAgent(t)
		for _, p := range [][2]string{{"A", "C"}, {"C", "A"}, {"B", "C"}} {
			ok, err := l.Probe(ctx, p[0], p[1], lab.ProbeSpec{Proto: "icmp", Timeout: 5 * time.Second})
			if err != nil || !ok {
				t.Errorf("%s -> %s: allowed=%v err=%v, want allowed", p[0], p[1], ok, err)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		out, code := servalLab(t, opts, name, "status")
		if code != 0 {
			t.Fatalf("status: exit %d\n%s", code, out)
		}
		for _, want := range []string{"host1", "172.17.8.102/24", "64514", "192.168.1.1", "group=GROUP1", "BGP SESSIONS", "bird router, AS 64513"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		if !hasAgent() && !strings.Contains(out, "serval-node is not built yet") {
			t.Errorf("status does not say serval-node is missing:\n%s", out)
		}
	})

	t.Run("add and delete a workload", func(t *testing.T) {
		out, code := servalLab(t, opts, name, "add-workload", "D", "--host", "host1", "--address", "192.168.1.40", "--label", "group=GROUP1")
		if code != 0 {
			t.Fatalf("add-workload: exit %d\n%s", code, out)
		}
		l2, err := lab.Open(name, opts)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := l2.Probe(ctx, "A", "D", lab.ProbeSpec{Proto: "icmp", Timeout: 3 * time.Second}); !ok || err != nil {
			t.Errorf("A -> new D: allowed=%v err=%v", ok, err)
		}
		if out, code := servalLab(t, opts, name, "add-workload", "D", "--host", "host1"); code == 0 || !strings.Contains(out, `"D" is already used`) {
			t.Errorf("adding D twice: exit %d\n%s", code, out)
		}
		if out, code := servalLab(t, opts, name, "delete-workload", "D"); code != 0 {
			t.Fatalf("delete-workload: exit %d\n%s", code, out)
		}
		if _, err := os.Stat("/run/netns/" + l.Netns("D")); err == nil {
			t.Errorf("namespace of D still there after delete-workload")
		}
		eps, err := l.Servalctl(ctx, nil, "get", "workloadendpoints", "-A")
		if err != nil || strings.Contains(string(eps), "192.168.1.40") {
			t.Errorf("D's endpoint is still in the datastore (err %v):\n%s", err, eps)
		}
		l3, _ := lab.Open(name, opts)
		if ok, _ := l3.Probe(ctx, "A", "192.168.1.40", lab.ProbeSpec{Proto: "icmp", Timeout: 500 * time.Millisecond}); ok {
			t.Errorf("A still reaches D's address after delete-workload")
		}
	})

	// Down now, and check nothing is left: the cleanup's second Down must
	// then be a no-op.
	pids := []int{}
	for _, id := range []string{"datastore", "router"} {
		data, _ := os.ReadFile(filepath.Join(l.Dir, "pids", id+".pid"))
		var pid int
		if _, err := fmtSscan(string(data), &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("pidfiles of datastore and router: got %v", pids)
	}
	if err := lab.Down(ctx, name, opts); err != nil {
		t.Fatalf("down: %v", err)
	}
	assertGone(t, name, l.Dir, pids)
}

// assertGone checks that nothing of lab name is left.
func assertGone(t *testing.T, name, dir string, pids []int) {
	t.Helper()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), lab.NetnsPrefix(name)) {
			t.Errorf("namespace %s left after down", e.Name())
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("run directory %s left after down", dir)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			if st, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat"); !strings.Contains(string(st), ") Z") {
				t.Errorf("process %d still runs after down", pid)
			}
		}
	}
}

// TestProbeSemantics checks what allowed and denied mean, through the CLI
// and its exit statuses, on one host without a router.
func TestProbeSemantics(t *testing.T) {
	needRoot(t)
	name := labName(t, "pr")
	_, opts := upLab(t, name, `
hosts: [{name: h1, address: 10.99.0.11/24}]
workloads:
  - {name: A, host: h1}
  - {name: B, host: h1}
manifests: [testdata/open.yaml]
`)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		minTime  time.Duration
	}{
		{"tcp with listener", []string{"probe", "A", "B", "--port", "8080"}, 0, "allowed: A -> B tcp/8080", 0},
		{"udp with listener", []string{"probe", "B", "A", "--proto", "udp", "--port", "5353"}, 0, "allowed", 0},
		{"icmp", []string{"probe", "A", "B", "--proto", "icmp"}, 0, "allowed", 0},
		{"to the host by name", []string{"probe", "A", "h1", "--proto", "icmp"}, 0, "allowed", 0},
		{"to an address", []string{"probe", "h1", "10.99.0.11", "--port", "8081"}, 0, "allowed", 0},
		{"tcp, nothing listens", []string{"probe", "A", "B", "--port", "8082", "--no-listener"}, 1, "denied: A -> B tcp/8082", 0},
		{"udp, nothing listens", []string{"probe", "A", "B", "--proto", "udp", "--port", "8083", "--no-listener"}, 1, "denied", 0},
		{"something else listens", []string{"probe", "h1", "datastore", "--port", "2379", "--no-listener"}, 0, "allowed", 0},
		{"icmp to nobody times out", []string{"probe", "A", "10.99.0.200", "--proto", "icmp", "--timeout", "700ms"}, 1, "denied", 700 * time.Millisecond},
		{"tcp to nobody times out", []string{"probe", "h1", "10.99.0.200", "--timeout", "700ms"}, 1, "denied", 600 * time.Millisecond},
		{"unknown name", []string{"probe", "A", "nosuch"}, 2, "not a workload, host, router or address", 0},
		{"from outside the lab", []string{"probe", "8.8.8.8", "A"}, 2, "not in the lab", 0},
		{"bad protocol", []string{"probe", "A", "B", "--proto", "sctp"}, 2, "not one of tcp, udp, icmp", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, code := servalLab(t, opts, name, tt.args...)
			took := time.Since(start)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("serval-lab %s: exit %d, output %q; want exit %d with %q", strings.Join(tt.args, " "), code, out, tt.wantCode, tt.wantOut)
			}
			if took < tt.minTime {
				t.Errorf("denied after %s, before the timeout %s", took, tt.minTime)
			}
		})
	}

	t.Run("matrix with expectation", func(t *testing.T) {
		dir := t.TempDir()
		good := filepath.Join(dir, "good.txt")
		bad := filepath.Join(dir, "bad.txt")
		os.WriteFile(good, []byte("FROM\\TO A B\nA - allow\nB allow -\n"), 0o644)
		os.WriteFile(bad, []byte("FROM\\TO A B\nA - deny\nB allow -\n"), 0o644)
		if out, code := servalLab(t, opts, name, "matrix", "--proto", "icmp", "--expect", good); code != 0 || !strings.Contains(out, "as expected") {
			t.Errorf("matrix --expect good: exit %d\n%s", code, out)
		}
		if out, code := servalLab(t, opts, name, "matrix", "--proto", "icmp", "--expect", bad); code != 1 || !strings.Contains(out, "A -> B: expected deny, got allow") {
			t.Errorf("matrix --expect bad: exit %d\n%s", code, out)
		}
	})
}

// TestDownAfterCrash kills `serval-lab up` with SIGKILL halfway, throws its
// run directory away too, and checks that down still removes every
// namespace and the datastore process it finds in them.
func TestDownAfterCrash(t *testing.T) {
	needRoot(t)
	name := labName(t, "cr")
	opts := testOptions(t)
	t.Cleanup(func() { _ = lab.Down(context.Background(), name, opts) })
	topo := filepath.Join(t.TempDir(), "crash.yaml")
	os.WriteFile(topo, []byte("name: "+name+`
router: {kind: bird, asNumber: 64513, address: 10.98.0.1/24}
hosts: [{name: h1, address: 10.98.0.11/24}, {name: h2, address: 10.98.0.12/24}]
workloads: [{name: A, host: h1}, {name: B, host: h2}]
`), 0o644)
	up := exec.Command(filepath.Join(binDir, "serval-lab"), "--run-root", opts.RunRoot, "--bin-dir", binDir, "up", "-f", topo)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the datastore runs: namespaces and a detached process exist.
	pidfile := filepath.Join(opts.RunRoot, name, "pids", "datastore.pid")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(pidfile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			up.Process.Kill()
			t.Fatal("serval-lab up did not start the datastore within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the pid is written just after start
	data, _ := os.ReadFile(pidfile)
	var etcdPID int
	if _, err := fmtSscan(string(data), &etcdPID); err != nil {
		t.Fatalf("reading %s: %v", pidfile, err)
	}
	up.Process.Signal(syscall.SIGKILL)
	up.Wait()

	// Lose the state too: down must work from the namespaces alone.
	if err := os.RemoveAll(filepath.Join(opts.RunRoot, name)); err != nil {
		t.Fatal(err)
	}
	names, err := lab.List(opts)
	if err != nil || !contains(names, name) {
		t.Errorf("List after the crash = %v, %v; want it to find %s by its namespaces", names, err, name)
	}
	if err := lab.Down(context.Background(), name, opts); err != nil {
		t.Fatalf("down after crash: %v", err)
	}
	assertGone(t, name, filepath.Join(opts.RunRoot, name), []int{etcdPID})
}
