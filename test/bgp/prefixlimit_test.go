package bgp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// TestPrefixLimitWithRouter restarts h1's serval-node with
// --bgp-max-prefixes=2 while the BIRD router announces three prefixes
// (the default route, the external segment and h2's block): h1 cuts the
// session every time it comes up, so it never holds more than the limit,
// while h2, with the default limit, keeps its session.
func TestPrefixLimitWithRouter(t *testing.T) {
	needRoot(t)
	topo := `
router: {kind: bird, asNumber: 65001, address: 172.30.6.1/24, defaultRoute: false}
hosts:
  - {name: h1, address: 172.30.6.11/24, asNumber: 65011}
  - {name: h2, address: 172.30.6.12/24, asNumber: 65012}
workloads:
  - {name: w1, host: h1}
  - {name: w2, host: h2}
externalHosts:
  - {name: ext1, address: 10.200.0.10/24}
`
	l := upLab(t, "plim", topo, "open.yaml", "nomesh.yaml")
	router := "172.30.6.1"
	routerPeer := func(host string) (info string, received uint64) {
		for _, p := range status(t, l, host).BGP.Peers {
			if p.Address == router {
				return p.Info, p.RoutesReceived
			}
		}
		return "absent", 0
	}
	eventually(t, 30*time.Second, "h1's session with the router is up with its 3 routes", func() error {
		if info, n := routerPeer("h1"); info != "Established" || n < 3 {
			return fmt.Errorf("h1: %s, %d routes", info, n)
		}
		return nil
	})

	// h1's agent again, with a limit of 2.
	if err := l.AgentStop("h1", false); err != nil {
		t.Fatal(err)
	}
	argv := append(lab.AgentCommand(filepath.Join(binDir, lab.AgentBinary), *l.State.Topology.Host("h1"), l.State.EtcdEndpoint, l.AgentSocket("h1")), "--bgp-max-prefixes=2")
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Netns("h1")}, argv...)...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "h1-agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("h1's serval-node:\n%s", b)
		}
	})
	eventually(t, 30*time.Second, "h1's new agent answers", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "servalctl"), "node", "status", "--socket", l.AgentSocket("h1")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// Watch for 15 s: the session may come up, but is cut as soon as the
	// router's third route arrives (GoBGP counts it, sends a Cease and
	// does not take it in), so it is never seen holding more than 2 routes
	// twice in a row.
	var states []string
	cut, over := false, 0
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		info, n := routerPeer("h1")
		if info == "Established" && n > 2 {
			over++
			if over > 1 {
				t.Fatalf("h1 keeps %d routes from the router, limit 2", n)
			}
		} else {
			over = 0
		}
		if info != "Established" {
			cut = true
		}
		if len(states) == 0 || states[len(states)-1] != info {
			states = append(states, info)
		}
	}
	if !cut {
		t.Errorf("h1's session with the router stayed up: states %v", states)
	}
	t.Logf("h1's session with the router went through %v", states)
	// h2 keeps its session (it now hears 2 routes: h1's block is gone
	// with h1's session).
	if info, n := routerPeer("h2"); info != "Established" || n < 2 {
		t.Errorf("h2 (default limit): %s with %d routes, want Established with the default route and the external segment", info, n)
	}
	// h1 cut the session with a Cease, subcode 1: maximum number of
	// prefixes reached (RFC 4486).
	logged, err := os.ReadFile(logf.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), `msg="sent notification" component=bgp gobgp=true Code=6 Data="" Key=172.30.6.1 State=BGP_FSM_ESTABLISHED Subcode=1`) {
		t.Errorf("h1's serval-node did not log a Cease (maximum number of prefixes) to the router")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sessions, err := l.RouterSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the router's sessions:\n%s", sessions)
}
