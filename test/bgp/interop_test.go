package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRouterInterop runs BIRD 2 and FRR as the top-of-rack router, each
// as eBGP peer of hosts with an AS of their own (per-rack AS, one host per
// rack here) and as iBGP route reflector of hosts sharing its AS. The mesh
// is off, so hosts learn each other's blocks only through the router, and
// hosts have no static default route: what they use to leave the cluster
// is what the router advertises.
func TestRouterInterop(t *testing.T) {
	needRoot(t)
	for _, kind := range []string{"bird", "frr"} {
		for _, mode := range []string{"ebgp", "ibgp"} {
			t.Run(kind+"-"+mode, func(t *testing.T) { testInterop(t, kind, mode) })
		}
	}
}

func testInterop(t *testing.T, kind, mode string) {
	routerAS, hostAS := 64512, []string{"", "", ""} // iBGP: everyone in the default AS
	if mode == "ebgp" {
		routerAS, hostAS = 65001, []string{", asNumber: 65011", ", asNumber: 65012", ", asNumber: 65013"}
	}
	topo := fmt.Sprintf(`
router: {kind: %s, asNumber: %d, address: 172.30.4.1/24, defaultRoute: false}
hosts:
  - {name: h1, address: 172.30.4.11/24%s}
  - {name: h2, address: 172.30.4.12/24%s}
  - {name: h3, address: 172.30.4.13/24%s}
workloads:
  - {name: w1, host: h1}
  - {name: w2, host: h2}
  - {name: w3, host: h3}
externalHosts:
  - {name: ext1, address: 10.200.0.10/24}
`, kind, routerAS, hostAS[0], hostAS[1], hostAS[2])
	l := upLab(t, kind+mode[:1], topo, "open.yaml", "nomesh.yaml")
	router := netip.MustParseAddr("172.30.4.1")
	hosts := []struct{ host, workload string }{{"h1", "w1"}, {"h2", "w2"}, {"h3", "w3"}}

	// The router learned every host's block, as its own CLI shows.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	table, err := l.RouterRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if b := block(t, l, h.workload).String(); !strings.Contains(table, b) {
			t.Errorf("the %s router has no route for %s's block %s:\n%s", kind, h.host, b, table)
		}
	}

	// Other hosts' blocks, through the router (no mesh). The lab is up
	// once every host reaches every workload, which the router's default
	// route alone can satisfy, so the blocks may still be on their way.
	took := eventually(t, 10*time.Second, "every host has learned every other host's block", func() error {
		for _, h := range hosts {
			for _, o := range hosts {
				if o.host == h.host {
					continue
				}
				if r := route(t, l, h.host, block(t, l, o.workload)); r == nil || r.Gw == nil {
					return fmt.Errorf("%s: no learned route to %s's block: %s", h.host, o.host, describe(r))
				}
			}
		}
		return nil
	})
	t.Logf("every block learned %s after the lab was up", took.Round(time.Millisecond))
	for _, h := range hosts {
		// What the router originates is programmed: the default route and
		// the external segment, outside every IP pool.
		for _, p := range []string{"0.0.0.0/0", "10.200.0.0/24"} {
			if r := route(t, l, h.host, netip.MustParsePrefix(p)); !learnedVia(r, router) {
				t.Errorf("%s: route %s: %s, want one learned from the router %s", h.host, p, describe(r), router)
			}
		}
	}

	// The plain host behind the router reaches every workload, and back:
	// a workload leaves through the route the router advertised.
	for _, h := range hosts {
		if !probe(t, l, "ext1", h.workload) {
			t.Errorf("ext1 cannot reach %s", h.workload)
		}
	}
	if !probe(t, l, "w1", "ext1") {
		t.Errorf("w1 cannot reach ext1 through the route the router advertised")
	}

	// Only plain IP hops: the router, the workload's host, the workload.
	w2 := l.State.Workloads["w2"].IP
	out, err := exec.Command("ip", "netns", "exec", l.Netns("ext1"), "traceroute", "-n", "-q", "1", "-w", "1", "-m", "6", w2).CombinedOutput()
	if err != nil {
		t.Fatalf("traceroute from ext1 to w2: %v\n%s", err, out)
	}
	var hops []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 2 {
			hops = append(hops, f[1])
		}
	}
	if want := []string{"10.200.0.1", "172.30.4.12", w2}; strings.Join(hops, " ") != strings.Join(want, " ") {
		t.Errorf("traceroute ext1 -> w2: hops %v, want %v\n%s", hops, want, out)
	}
}
