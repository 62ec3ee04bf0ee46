package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

const hostTopo = `
hosts:
  - {name: host1, address: 172.17.10.101/24}
  - {name: host2, address: 172.17.10.102/24}
  - {name: host3, address: 172.17.10.103/24}
workloads:
  - {name: W1, host: host1}
  - {name: W2, host: host2}
  - {name: W3, host: host3}
manifests: [testdata/open.yaml, testdata/fast-bgp.yaml]
`

// TestHostLeavesAndReturns pulls host2's cable and stops its agent: the
// other hosts must drop its routes once the hold time (3 s, from the
// BGPPeer's keepaliveTime 1s) and the graceful-restart time (2 s) have
// passed, and its workload must be unreachable while the rest of the
// network carries on. Then the cable goes back and the agent starts:
// routes and reachability return, and the workload keeps its address.
func TestHostLeavesAndReturns(t *testing.T) {
	needRoot(t)
	needAgent(t)
	name := labName(t, "hostlr")
	l, _ := upLab(t, name, hostTopo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	host2 := netip.MustParsePrefix(l.State.Topology.Host("host2").Address).Addr()
	w2 := workloadIP(t, l, "W2")
	icmp := lab.ProbeSpec{Proto: "icmp", Timeout: time.Second}
	tcp := lab.ProbeSpec{Proto: "tcp", Port: 8080, Timeout: time.Second}
	others := []string{"host1", "host3"}

	for _, h := range others {
		if via := routeVia(t, l, h, w2); via != host2 {
			t.Fatalf("before: %s routes W2 (%s) via %v, want via host2 (%s)", h, w2, via, host2)
		}
	}
	for _, p := range [][2]string{{"W1", "W2"}, {"W3", "W2"}, {"W2", "W1"}, {"W1", "W3"}} {
		eventuallyProbe(t, l, p[0], p[1], tcp, true, 10*time.Second)
	}

	// host2 leaves: cable first, so that nothing it says on the way out
	// reaches the others and they notice only by the hold timer.
	left := time.Now()
	if err := l.HostLink(ctx, "host2", false); err != nil {
		t.Fatal(err)
	}
	if err := l.AgentStop("host2", false); err != nil {
		t.Fatalf("stopping serval-node on host2 gracefully: %v", err)
	}
	const holdPlusRestart = 3*time.Second + 2*time.Second
	for _, h := range others {
		waitRoute(t, l, h, w2, netip.Addr{}, holdPlusRestart+10*time.Second)
	}
	t.Logf("host2's routes were gone from host1 and host3 %s after its cable was pulled (hold 3s + restart 2s)", time.Since(left).Round(100*time.Millisecond))
	for _, p := range [][2]string{{"W1", "W2"}, {"W3", "W2"}} {
		if ok, err := l.Probe(ctx, p[0], p[1], icmp); err != nil || ok {
			t.Errorf("host2 gone: %s -> %s: allowed=%v err=%v, want denied", p[0], p[1], ok, err)
		}
	}
	for _, p := range [][2]string{{"W1", "W3"}, {"W3", "W1"}} {
		if ok, err := l.Probe(ctx, p[0], p[1], tcp); err != nil || !ok {
			t.Errorf("host2 gone: %s -> %s: allowed=%v err=%v, want allowed (the rest carries on)", p[0], p[1], ok, err)
		}
	}

	// host2 comes back.
	if err := l.HostLink(ctx, "host2", true); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := l.AgentStart(ctx, "host2"); err != nil {
		t.Fatal(err)
	}
	for _, h := range others {
		waitRoute(t, l, h, w2, host2, 30*time.Second)
	}
	t.Logf("host2's routes were back on host1 and host3 %s after its cable and agent returned", time.Since(back).Round(100*time.Millisecond))
	for _, p := range [][2]string{{"W1", "W2"}, {"W3", "W2"}, {"W2", "W1"}, {"W2", "W3"}} {
		eventuallyProbe(t, l, p[0], p[1], tcp, true, 10*time.Second)
	}
	// W2 kept its address: in its namespace and in its endpoint.
	out, err := exec.Command("ip", "-n", l.Netns("W2"), "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " "+w2.String()+"/32") {
		t.Errorf("W2's eth0 after host2's return: want %s/32, got %s (err %v)", w2, out, err)
	}
	wep, err := l.Servalctl(ctx, nil, "get", "workloadendpoints", "-A", "-o", "yaml")
	if err != nil || !strings.Contains(string(wep), w2.String()+"/32") {
		t.Errorf("W2's endpoint after host2's return does not carry %s/32 (err %v):\n%s", w2, err, wep)
	}
}

// routeVia is the gateway through which host's kernel sends to ip (invalid
// when it has no gateway: a direct or default route out of eth0).
func routeVia(t *testing.T, l *lab.Lab, host string, ip netip.Addr) netip.Addr {
	t.Helper()
	out, err := exec.Command("ip", "-n", l.Netns(host), "-4", "route", "get", ip.String()).CombinedOutput()
	if err != nil {
		// "Network is unreachable" is an answer too: no route at all.
		if strings.Contains(string(out), "unreachable") {
			return netip.Addr{}
		}
		t.Fatalf("ip route get %s on %s: %v: %s", ip, host, err, out)
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			a, err := netip.ParseAddr(f[i+1])
			if err != nil {
				t.Fatalf("ip route get %s on %s: %q", ip, host, out)
			}
			return a
		}
	}
	return netip.Addr{}
}

// waitRoute waits until host routes ip via want (invalid: via no gateway).
func waitRoute(t *testing.T, l *lab.Lab, host string, ip, want netip.Addr, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := routeVia(t, l, host, ip)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			out, _ := l.Routes(context.Background(), host)
			t.Fatalf("%s still routes %s via %v after %s, want via %v:\n%s", host, ip, got, timeout, fmtAddr(want), out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fmtAddr(a netip.Addr) string {
	if !a.IsValid() {
		return "no gateway"
	}
	return fmt.Sprint(a)
}
