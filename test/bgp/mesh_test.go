package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const meshTopo = `
hosts:
  - {name: h1, address: 172.30.3.11/24}
  - {name: h2, address: 172.30.3.12/24}
  - {name: h3, address: 172.30.3.13/24}
workloads:
  - {name: w1, host: h1}
  - {name: w2, host: h2}
  - {name: w3, host: h3}
`

// TestMesh: three hosts in the default node-to-node mesh. Every host
// learns every other host's block; the sessions show in servalctl node
// status; a killed agent's routes stay on its peers while it restarts
// (graceful restart); an agent that stops for good has its routes
// withdrawn.
func TestMesh(t *testing.T) {
	needRoot(t)
	l := upLab(t, "mesh", meshTopo, "open.yaml")
	hosts := map[string]string{"h1": "w1", "h2": "w2", "h3": "w3"}

	for h := range hosts {
		peers := peerInfo(t, l, h)
		for other := range hosts {
			if other == h {
				continue
			}
			addr := hostAddr(l, other).String()
			if got := peers[addr]; got != "node-to-node mesh/Established" {
				t.Errorf("%s: session to %s (%s) is %q, want node-to-node mesh/Established (all: %v)", h, other, addr, got, peers)
			}
			if r := route(t, l, h, block(t, l, hosts[other])); !learnedVia(r, hostAddr(l, other)) {
				t.Errorf("%s: route to %s's block %s: %s, want one learned via %s", h, other, block(t, l, hosts[other]), describe(r), hostAddr(l, other))
			}
		}
		if len(peers) != len(hosts)-1 {
			t.Errorf("%s has %d sessions, want %d: %v", h, len(peers), len(hosts)-1, peers)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("ECMP", func(t *testing.T) {
		// h2 and h3 both advertise one service range (node-specific
		// BGPConfigurations): h1 has two equal iBGP paths and programs one
		// route with both next hops; when h3 stops advertising, one is left.
		svc := netip.MustParsePrefix("10.250.0.0/24")
		cfg := func(node, spec string) string {
			return fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.%s}\nspec: %s\n---\n", node, spec)
		}
		adv := "{serviceExternalIPs: [{cidr: " + svc.String() + "}]}"
		apply(t, l, cfg("h2", adv)+cfg("h3", adv))
		want2 := []string{hostAddr(l, "h2").String(), hostAddr(l, "h3").String()}
		eventually(t, 15*time.Second, "h1 has an ECMP route to "+svc.String()+" via h2 and h3", func() error {
			if got := nexthops(route(t, l, "h1", svc)); strings.Join(got, ",") != strings.Join(want2, ",") {
				return fmt.Errorf("next hops %v, want %v", got, want2)
			}
			return nil
		})
		apply(t, l, cfg("h3", "{}"))
		eventually(t, 15*time.Second, "h1's route to "+svc.String()+" down to h2 alone", func() error {
			if got := nexthops(route(t, l, "h1", svc)); strings.Join(got, ",") != want2[0] {
				return fmt.Errorf("next hops %v, want [%s]", got, want2[0])
			}
			return nil
		})
		apply(t, l, cfg("h2", "{}"))
	})

	t.Run("graceful restart", func(t *testing.T) {
		b3, h3 := block(t, l, "w3"), hostAddr(l, "h3")
		if err := l.AgentStop("h3", true); err != nil {
			t.Fatal(err)
		}
		// While h3's agent is down (its kernel keeps forwarding), h1 and
		// h2 keep the route to its block and w3 stays reachable.
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			for _, h := range []string{"h1", "h2"} {
				if r := route(t, l, h, b3); !learnedVia(r, h3) {
					t.Fatalf("%s lost its route to h3's block %s %s after h3's agent was killed: %s", h, b3, time.Since(start).Round(time.Millisecond), describe(r))
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		if !probe(t, l, "w1", "w3") {
			t.Errorf("w1 cannot reach w3 while h3's agent restarts")
		}
		if err := l.AgentStart(t.Context(), "h3"); err != nil {
			t.Fatal(err)
		}
		// Both peers reconnect (BGP's connect retry is 5 s) and have h3's
		// block again, refreshed rather than stale.
		took := eventually(t, 30*time.Second, "h3's sessions Established again, its block re-advertised", func() error {
			for _, h := range []string{"h1", "h2"} {
				for _, p := range status(t, l, h).BGP.Peers {
					if p.Address == h3.String() && (p.Info != "Established" || p.RoutesReceived == 0) {
						return fmt.Errorf("%s -> h3 is %s with %d routes received", h, p.Info, p.RoutesReceived)
					}
				}
			}
			return nil
		})
		t.Logf("h3's sessions re-established %s after its agent restarted", took.Round(time.Millisecond))
		if !probe(t, l, "w1", "w3") {
			t.Errorf("w1 cannot reach w3 after h3's agent restarted")
		}
	})

	t.Run("withdrawal when an agent stops", func(t *testing.T) {
		b3, h3 := block(t, l, "w3"), hostAddr(l, "h3")
		if err := l.AgentStop("h3", false); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 15*time.Second, "h1 and h2 withdraw h3's block", func() error {
			for _, h := range []string{"h1", "h2"} {
				if r := route(t, l, h, b3); r != nil {
					return fmt.Errorf("%s still has %s (h3 is %s)", h, describe(r), h3)
				}
			}
			return nil
		})
		t.Logf("h3's block withdrawn from its peers %s after its agent stopped", took.Round(time.Millisecond))
	})
}
