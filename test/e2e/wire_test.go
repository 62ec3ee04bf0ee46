package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

const wireHosts = `
fabric: wire
hosts:
  - {name: host1, address: 172.17.9.1/24}
  - {name: host2, address: 172.17.9.2/24}
workloads:
  - {name: A, host: host1}
  - {name: B, host: host2}
manifests: [testdata/open.yaml]
`

// TestWireLab brings up the dataplane benchmark's topology, two hosts
// cabled back to back by one veth and no router, and checks that nothing
// sits between them (no fabric namespace, the route to the other host's
// workload is BGP's, via the other end of the wire) and that workloads on
// the two hosts reach each other through real serval-node agents.
func TestWireLab(t *testing.T) {
	needRoot(t)
	needAgent(t)
	name := labName(t, "wire")
	start := time.Now()
	l, opts := upLab(t, name, wireHosts)
	t.Logf("up took %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	if _, err := os.Stat("/run/netns/" + l.Netns("fabric")); err == nil {
		t.Errorf("a wire lab has a fabric namespace")
	}
	b, err := l.Resolve("B")
	if err != nil {
		t.Fatal(err)
	}
	// host1 routes B's block over the wire to host2, by BGP (proto 80).
	out, err := exec.Command("ip", "-n", l.Netns("host1"), "route", "show", "proto", "80").CombinedOutput()
	if err != nil {
		t.Fatalf("host1's routes: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "via 172.17.9.2 dev eth0") {
		t.Errorf("host1 has no BGP route via host2 over the wire:\n%s", out)
	}
	out, err = exec.Command("ip", "-n", l.Netns("host1"), "route", "get", b.IP.String()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "via 172.17.9.2 dev eth0") {
		t.Errorf("host1's route to B (%s) is not via host2 on the wire (err %v):\n%s", b.IP, err, out)
	}
	// The wire is one veth: host1's eth0 has its peer in another
	// namespace, the fabric bridge's ports are gone.
	out, err = exec.Command("ip", "-n", l.Netns("host1"), "-d", "link", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "veth") {
		t.Errorf("host1's eth0 is not a veth (err %v):\n%s", err, out)
	}
	// (host2 reaching the datastore over its management link is what let
	// its agent become ready and the lab come up.)
	for _, p := range []struct{ from, to, proto string }{
		{"A", "B", "icmp"}, {"B", "A", "icmp"}, {"A", "B", "tcp"},
	} {
		ok, err := l.Probe(ctx, p.from, p.to, lab.ProbeSpec{Proto: p.proto, Port: 8080, Timeout: 3 * time.Second})
		if err != nil || !ok {
			t.Errorf("%s -> %s %s: allowed=%v err=%v, want allowed", p.from, p.to, p.proto, ok, err)
		}
	}
	if out, code := servalLab(t, opts, name, "status"); code != 0 || !strings.Contains(out, "veth eth0 between host1 and host2") {
		t.Errorf("status (exit %d) does not show the wire:\n%s", code, out)
	}
	if err := l.HostLink(ctx, "host2", false); err == nil || !strings.Contains(err.Error(), "wire") {
		t.Errorf("HostLink on a wire lab: %v, want an error saying there is no bridge", err)
	}
}
