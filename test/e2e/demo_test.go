package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// expectMatrix probes every pair with spec and fails the test on every cell
// that differs from the table in file (lab/demo-expect-*.txt). Policy takes
// a moment to reach every host, so it retries for a few seconds.
func expectMatrix(t *testing.T, l *lab.Lab, spec lab.ProbeSpec, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "lab", file))
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := lab.ParseMatrix(string(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var diffs []string
	for try := 0; try < 5; try++ {
		names, got, err := l.Matrix(context.Background(), spec)
		if err != nil {
			t.Fatalf("matrix: %v", err)
		}
		if diffs = lab.CompareMatrix(want, names, got); len(diffs) == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	t.Errorf("%s matrix differs from %s:\n  %s", spec.Proto, file, strings.Join(diffs, "\n  "))
}

// TestDemoPolicy is the talk's demo as a test: group isolation across two
// hosts, a live policy change, and isolation kept through an agent restart.
func TestDemoPolicy(t *testing.T) {
	needRoot(t)
	needAgent(t)
	tp, err := lab.LoadTopology(filepath.Join(repo, "lab", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tp.Name = labName(t, "demo")
	opts := testOptions(t)
	t.Cleanup(func() { _ = lab.Down(context.Background(), tp.Name, opts) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, tp, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	// The demo's "BGP sessions on both hosts" step: servalctl run by
	// serval-lab exec in a host finds that host's agent, which is ready.
	for _, h := range []string{"host1", "host2"} {
		out, code := servalLab(t, opts, tp.Name, "exec", h, "--", filepath.Join(binDir, "servalctl"), "node", "status")
		if code != 0 || !strings.Contains(out, "Serval process is running (node "+h+")") || !strings.Contains(out, "Ready: yes") {
			t.Errorf("servalctl node status in %s: exit %d:\n%s", h, code, out)
		}
	}
	icmp := lab.ProbeSpec{Proto: "icmp", Timeout: time.Second}
	web := lab.ProbeSpec{Proto: "tcp", Port: 80, Timeout: time.Second}

	expectMatrix(t, l, icmp, "demo-expect-groups.txt")
	expectMatrix(t, l, web, "demo-expect-groups.txt")

	if out, err := l.Servalctl(ctx, nil, "apply", "-f", filepath.Join(repo, "lab", "demo-policy.yaml")); err != nil {
		t.Fatalf("applying the policy: %v\n%s", err, out)
	}
	expectMatrix(t, l, web, "demo-expect-web.txt")
	expectMatrix(t, l, icmp, "demo-expect-groups.txt")

	// kill -9 the agent on host1 and start it again: isolation holds
	// while it is down and after it is back.
	if err := l.AgentStop("host1", true); err != nil {
		t.Fatal(err)
	}
	expectMatrix(t, l, icmp, "demo-expect-groups.txt")
	if err := l.AgentStart(ctx, "host1"); err != nil {
		t.Fatal(err)
	}
	expectMatrix(t, l, web, "demo-expect-web.txt")
}
