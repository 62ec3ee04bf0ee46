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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, got, err := l.Matrix(ctx, spec)
	if err != nil {
		t.Fatalf("matrix: %v", err)
	}
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
				t.Errorf("%s %s -> %s: the probe says %v, servalctl why exits %d:\n%s", spec.Proto, from, to, got[i][j], code, out)
			}
			pairs++
		}
	}
	if pairs < 20 {
		t.Errorf("only %d pairs compared", pairs)
	}
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
}
