package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labtest"
	"github.com/servalnet/serval/internal/overlay"
)

// expectMatrix probes every pair with spec and fails on every cell that
// differs from lab/<file>, retrying for a few seconds (as test/e2e does).
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

// TestDemoPolicyOverVXLAN runs the demo's policy matrices (test/e2e
// TestDemoPolicy, lab/demo-expect-*.txt) with the demo's pool in VXLAN
// Always: the answers are the same, and the traffic between the hosts did
// go through the tunnel. The demo's workloads have static addresses in one
// block, so host2's are borrowed: routed by /32 through the tunnel.
func TestDemoPolicyOverVXLAN(t *testing.T) {
	labtest.NeedRoot(t)
	tp, err := lab.LoadTopology(filepath.Join(repo, "lab", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	tp.Name = "ovdemo" + hex.EncodeToString(b)
	tp.Manifests = append(tp.Manifests, filepath.Join(repo, "test", "overlay", "testdata", "demo-pool-vxlan.yaml"))
	opts := lab.Options{RunRoot: t.TempDir(), BinDir: binDir, Logger: labtest.Logger(t, 0)}
	t.Cleanup(func() { _ = lab.Down(context.Background(), tp.Name, opts) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, tp, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	icmp := lab.ProbeSpec{Proto: "icmp", Timeout: time.Second}
	web := lab.ProbeSpec{Proto: "tcp", Port: 80, Timeout: time.Second}
	before := counter(t, l, "host1", overlay.DeviceV4, "tx_packets")
	expectMatrix(t, l, icmp, "demo-expect-groups.txt")
	expectMatrix(t, l, web, "demo-expect-groups.txt")
	if out, err := l.Servalctl(ctx, nil, "apply", "-f", filepath.Join(repo, "lab", "demo-policy.yaml")); err != nil {
		t.Fatalf("applying the policy: %v\n%s", err, out)
	}
	expectMatrix(t, l, web, "demo-expect-web.txt")
	expectMatrix(t, l, icmp, "demo-expect-groups.txt")
	if after := counter(t, l, "host1", overlay.DeviceV4, "tx_packets"); after <= before {
		t.Errorf("host1 sent nothing through %s during the matrices (tx %d -> %d): the test did not cross the tunnel", overlay.DeviceV4, before, after)
	}
	r := mustSh(t, l.Netns("host1"), "ip", "route", "show", "proto", "81")
	if !strings.Contains(r, "192.168.1.4 via") || !strings.Contains(r, "dev "+overlay.DeviceV4+" onlink") {
		t.Errorf("host1 has no tunnel route for host2's borrowed address 192.168.1.4:\n%s", r)
	}
}
