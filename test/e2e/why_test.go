package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// whyExit runs servalctl why in the lab and returns its exit status.
func whyExit(ctx context.Context, l *lab.Lab, args ...string) (int, string) {
	out, err := l.Servalctl(ctx, nil, append([]string{"why"}, args...)...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	return -1, err.Error()
}

// whyAgrees probes every pair of the lab's workloads with spec (after the
// matrix reached want) and checks that servalctl why gives the same
// verdict for each pair, by exit status.
func whyAgrees(t *testing.T, l *lab.Lab, spec lab.ProbeSpec, want string) {
	t.Helper()
	expectMatrix(t, l, spec, want)
	for _, d := range whyDiffs(t, l, spec) {
		t.Error(d)
	}
}

// whyAgreesEventually is whyAgrees for a policy without an expected
// matrix: it compares until the agents have caught up (a few seconds),
// and checks the matrix has both verdicts, so that it tests something.
func whyAgreesEventually(t *testing.T, l *lab.Lab, spec lab.ProbeSpec) {
	t.Helper()
	var diffs []string
	for try := 0; try < 5; try++ {
		if diffs = whyDiffs(t, l, spec); len(diffs) == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	for _, d := range diffs {
		t.Error(d)
	}
}

// whyDiffs probes every pair and runs servalctl why on each; it returns
// the pairs where they differ.
func whyDiffs(t *testing.T, l *lab.Lab, spec lab.ProbeSpec) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, got, err := l.Matrix(ctx, spec)
	if err != nil {
		t.Fatalf("matrix: %v", err)
	}
	var diffs []string
	allowed := 0
	args := []string{"--proto", spec.Proto}
	if spec.Proto != "icmp" {
		args = append(args, "--port", fmt.Sprint(spec.Port))
	}
	pairs := 0
	for i, from := range names {
		for j, to := range names {
			if i == j {
				continue
			}
			a, err1 := l.Resolve(from)
			b, err2 := l.Resolve(to)
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			code, out := whyExit(ctx, l, append([]string{a.IP.String(), b.IP.String()}, args...)...)
			want := 1
			if got[i][j] {
				want = 0
			}
			if code != want {
				diffs = append(diffs, fmt.Sprintf("%s/%d %s -> %s: the probe says allowed=%v, servalctl why exits %d:\n%s", spec.Proto, spec.Port, from, to, got[i][j], code, out))
			}
			if got[i][j] {
				allowed++
			}
			pairs++
		}
	}
	if pairs < 20 || allowed == 0 || allowed == pairs {
		t.Errorf("%s/%d: %d pairs compared, %d allowed: the matrix tests nothing", spec.Proto, spec.Port, pairs, allowed)
	}
	return diffs
}

// TestWhyMatchesProbes: servalctl why agrees with the real probe for every
// pair of the demo's matrices (profiles only, then a policy with an Allow
// and a Pass), and a staged deny changes nothing enforced while
// why --staged names it.
func TestWhyMatchesProbes(t *testing.T) {
	needRoot(t)
	needAgent(t)
	tp, err := lab.LoadTopology(filepath.Join(repo, "lab", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tp.Name = labName(t, "why")
	opts := testOptions(t)
	t.Cleanup(func() { _ = lab.Down(context.Background(), tp.Name, opts) })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, tp, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	icmp := lab.ProbeSpec{Proto: "icmp", Timeout: time.Second}
	web := lab.ProbeSpec{Proto: "tcp", Port: 80, Timeout: time.Second}
	closed := lab.ProbeSpec{Proto: "tcp", Port: 81, Timeout: time.Second}

	whyAgrees(t, l, icmp, "demo-expect-groups.txt")
	whyAgrees(t, l, web, "demo-expect-groups.txt")
	if out, err := l.Servalctl(ctx, nil, "apply", "-f", filepath.Join(repo, "lab", "demo-policy.yaml")); err != nil {
		t.Fatalf("applying the policy: %v\n%s", err, out)
	}
	whyAgrees(t, l, web, "demo-expect-web.txt")
	whyAgrees(t, l, closed, "demo-expect-groups.txt")
	whyAgrees(t, l, icmp, "demo-expect-groups.txt")

	// A staged deny of A -> C, a flow that is allowed: it keeps flowing,
	// and why --staged says the staged policy would cut it.
	staged := `apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: stage-deny-a-to-c}
spec:
  order: 10 # before the demo policy, whose Pass would skip it
  selector: group == 'GROUP1'
  types: [Ingress]
  ingress: [{action: Deny, protocol: ICMP, source: {nets: [192.168.1.1/32]}}]
`
	if out, err := l.Servalctl(ctx, []byte(staged), "apply", "-f", "-"); err != nil {
		t.Fatalf("staging: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second) // what an agent would enforce, it would have by now
	if ok, err := l.Probe(ctx, "A", "C", icmp); err != nil || !ok {
		t.Errorf("A -> C with a staged deny: allowed %v, %v; want still allowed", ok, err)
	}
	a, _ := l.Resolve("A")
	c, _ := l.Resolve("C")
	code, out := whyExit(ctx, l, a.IP.String(), c.IP.String(), "--proto", "icmp", "--staged")
	for _, w := range []string{"ALLOWED now, DENIED with the staged policies", "StagedGlobalNetworkPolicy stage-deny-a-to-c (Set)", "GlobalNetworkPolicy stage-deny-a-to-c"} {
		if !strings.Contains(out, w) {
			t.Errorf("why --staged lacks %q:\n%s", w, out)
		}
	}
	if code != 0 {
		t.Errorf("why --staged exits %d, want 0 (the enforced verdict)", code)
	}
	whyAgrees(t, l, icmp, "demo-expect-groups.txt")

	// Tiers, a Deny by source net, Pass, a namespaced policy with a
	// selector and notNets.
	if out, err := l.Servalctl(ctx, nil, "apply", "-f", filepath.Join(repo, "test", "e2e", "testdata", "why-policy.yaml")); err != nil {
		t.Fatalf("applying why-policy.yaml: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	whyAgreesEventually(t, l, web)
	whyAgreesEventually(t, l, lab.ProbeSpec{Proto: "tcp", Port: 8080, Timeout: time.Second})
	whyAgreesEventually(t, l, icmp)
	if ok, _ := l.Probe(ctx, "A", "C", web); ok {
		t.Error("A -> C tcp/80 allowed through security.guard's deny")
	}
	if ok, _ := l.Probe(ctx, "B", "C", lab.ProbeSpec{Proto: "tcp", Port: 8080, Timeout: time.Second}); !ok {
		t.Error("B -> C tcp/8080 denied despite group2-8080")
	}
}
