package reliability

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDatastoreFaults runs a lab on a real 3-member etcd cluster (Debian's
// etcd) and takes it apart: one member killed, writes go on; every member
// stopped, the agents keep forwarding and enforcing the last state, report
// not ready (but alive), and servalctl fails saying why; members back, the
// agents resync by themselves (same process) and a change takes effect.
func TestDatastoreFaults(t *testing.T) {
	needRoot(t)
	needBinary(t, "etcd")
	l := upLab(t, "ds", `
datastore: {kind: etcd-cluster, members: 3}
hosts:
  - {name: h1, address: 10.91.0.11/24}
  - {name: h2, address: 10.91.0.12/24}
workloads:
  - {name: A, host: h1, labels: {app: a}, profiles: [open]}
  - {name: B, host: h2, labels: {app: b}, profiles: [open]}
  - {name: C, host: h2, labels: {app: c}}
`, map[string]string{"open.yaml": openProfile})
	ctx := context.Background()
	pid1 := l.AgentPID("h1")

	wantReach(t, l, "A", "B", icmp, true, "both carry the open profile")
	wantReach(t, l, "A", "C", icmp, false, "C has no profile and no policy")

	// One member killed: the other two keep a quorum; writes go on.
	if err := l.DatastoreStop("etcd1", true); err != nil {
		t.Fatal(err)
	}
	netset := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: probe1}
spec: {nets: [198.51.100.0/24]}
`
	if out, err := l.Servalctl(ctx, []byte(netset), "--timeout", "10s", "apply", "-f", "-"); err != nil {
		t.Errorf("apply with one member of three killed: %v\n%s", err, out)
	}
	wantReach(t, l, "A", "B", icmp, true, "one etcd member down")

	// Every member stopped.
	for _, m := range []string{"etcd2", "etcd3"} {
		if err := l.DatastoreStop(m, false); err != nil {
			t.Fatal(err)
		}
	}
	out, err := l.Servalctl(ctx, nil, "--timeout", "3s", "get", "profiles")
	if err == nil {
		t.Errorf("servalctl get with every etcd member stopped succeeded:\n%s", out)
	} else if msg := strings.ToLower(string(out)); !strings.Contains(msg, "datastore") && !strings.Contains(msg, "etcd") {
		t.Errorf("servalctl's error does not say the datastore is unreachable:\n%s", out)
	} else {
		t.Logf("servalctl with the datastore down says: %s", strings.TrimSpace(string(out)))
	}
	for _, h := range []string{"h1", "h2"} {
		if !eventually(30*time.Second, func() bool { c, _ := health(l, h, "/readiness"); return c == 503 }) {
			c, err := health(l, h, "/readiness")
			t.Errorf("%s /readiness with the datastore down = %d (%v), want 503", h, c, err)
		}
		if c, err := health(l, h, "/liveness"); c != 200 {
			t.Errorf("%s /liveness with the datastore down = %d (%v), want 200: the agent itself is fine", h, c, err)
		}
	}
	// Exactly the last state: the allowed pair still talks, the denied
	// pair is still denied, across hosts and on one host.
	for _, c := range []struct {
		from, to string
		want     bool
	}{{"A", "B", true}, {"B", "A", true}, {"A", "C", false}, {"B", "C", false}, {"C", "B", false}} {
		if got := probe(t, l, c.from, c.to, icmp); got != c.want {
			t.Errorf("datastore down: %s -> %s reachable = %v, want %v (the last state)", c.from, c.to, got, c.want)
		}
	}

	// Members back (together: one alone has no quorum and never reports
	// healthy): the agents resync by themselves.
	errs := make(chan error, 3)
	for _, m := range []string{"etcd1", "etcd2", "etcd3"} {
		go func() { errs <- l.DatastoreStart(ctx, m) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"h1", "h2"} {
		if !eventually(45*time.Second, func() bool { c, _ := health(l, h, "/readiness"); return c == 200 }) {
			t.Errorf("%s not ready again 45 s after the datastore came back", h)
		}
	}
	if l.AgentPID("h1") != pid1 {
		t.Errorf("serval-node on h1 was restarted (pid %d, was %d): it should have resynced by itself", l.AgentPID("h1"), pid1)
	}
	// A change after the outage takes effect: a policy opens C.
	pol := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: let-c}
spec:
  selector: app == 'c'
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
`
	if out, err := l.Servalctl(ctx, []byte(pol), "--timeout", "10s", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply after the datastore came back: %v\n%s", err, out)
	}
	wantReach(t, l, "A", "C", icmp, true, "policy applied after the datastore came back")
}
