package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// TestHostDisappears: h2 vanishes (its agent stopped and its fabric link
// cut). With BGP keepalive 1 s (hold 3 s) and a restart time of 2 s, h1
// withdraws h2's routes within hold + restart time (plus slack for the
// lab); IPAM on h1, pressed for addresses from a pool of four small
// blocks, never hands out the addresses of h2's workloads, whose endpoints
// still exist; h2 comes back and its routes do too.
func TestHostDisappears(t *testing.T) {
	needRoot(t)
	const hold, restart = 3 * time.Second, 2 * time.Second
	l := upLab(t, "host", `
hosts:
  - {name: h1, address: 10.94.0.11/24}
  - {name: h2, address: 10.94.0.12/24}
workloads:
  - {name: A, host: h1, profiles: [open]}
  - {name: B, host: h2, profiles: [open]}
  - {name: C, host: h2, profiles: [open]}
`, map[string]string{"open.yaml": openProfile + `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: small}
spec: {cidr: 172.30.77.0/27, blockSize: 29, ipipMode: Never, vxlanMode: Never}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: fast}
spec:
  peerSelector: all()
  keepaliveTime: 1s
  maxRestartTime: 2s
`})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bIP, cIP := workloadIP(t, l, "B"), workloadIP(t, l, "C")
	hasRoute := func(dst string) bool {
		out, err := nsExec(ctx, l.Netns("h1"), "ip", "route", "get", dst)
		return err == nil && strings.Contains(string(out), "via 10.94.0.12")
	}
	if !hasRoute(bIP) || !hasRoute(cIP) {
		t.Fatalf("h1 has no route to h2's workloads before the fault:\n%s", routesIn(t, l.Netns("h1")))
	}
	wantReach(t, l, "A", "B", icmp, true, "control")

	// h2 disappears: its agent dies and its cable is pulled.
	if err := l.AgentStop("h2", true); err != nil {
		t.Fatal(err)
	}
	if err := l.HostLink(ctx, "h2", false); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	limit := hold + restart + 5*time.Second
	if !eventually(limit, func() bool { return !hasRoute(bIP) && !hasRoute(cIP) }) {
		t.Errorf("h1 still routes to h2's workloads %s after h2 vanished (hold %s + restart %s):\n%s", limit, hold, restart, routesIn(t, l.Netns("h1")))
	} else {
		t.Logf("h1 withdrew h2's routes %s after h2 vanished (hold %s, restart time %s)", time.Since(gone).Round(100*time.Millisecond), hold, restart)
	}

	// IPAM while h2 is away: its endpoints still exist, so its addresses
	// stay its own even when h1 runs short and borrows from its blocks.
	for i := range 26 {
		name := fmt.Sprintf("X%d", i)
		if err := l.AddWorkload(ctx, lab.Workload{Name: name, Host: "h1", Profiles: []string{"open"}}); err != nil {
			t.Logf("adding %s on h1: %v (the pool may be full)", name, err)
			break
		}
		if ip := workloadIP(t, l, name); ip == bIP || ip == cIP {
			t.Errorf("IPAM gave %s on h1 the address %s of a workload of the vanished h2", name, ip)
		}
	}

	// h2 returns.
	if err := l.HostLink(ctx, "h2", true); err != nil {
		t.Fatal(err)
	}
	if err := l.AgentStart(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	if !eventually(30*time.Second, func() bool { return hasRoute(bIP) && hasRoute(cIP) }) {
		t.Errorf("h1 has no route to h2's workloads 30 s after h2 came back:\n%s", routesIn(t, l.Netns("h1")))
	}
	wantReach(t, l, "A", "B", icmp, true, "h2 is back")
	wantReach(t, l, "A", "C", icmp, true, "h2 is back")
}
