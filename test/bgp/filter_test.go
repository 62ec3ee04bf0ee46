package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestBGPFilterWithRouter applies a BGPFilter to the hosts' session with
// a BIRD and an FRR router: its import rule keeps a prefix the router
// announces out of the hosts' kernels, its export rule keeps one host's
// block out of the router's table, and removing the filter from the
// BGPPeer brings both back.
func TestBGPFilterWithRouter(t *testing.T) {
	needRoot(t)
	for _, kind := range []string{"bird", "frr"} {
		t.Run(kind, func(t *testing.T) { testBGPFilter(t, kind) })
	}
}

func testBGPFilter(t *testing.T, kind string) {
	topo := `
router: {kind: ` + kind + `, asNumber: 65001, address: 172.30.5.1/24, defaultRoute: false}
hosts:
  - {name: h1, address: 172.30.5.11/24, asNumber: 65011}
  - {name: h2, address: 172.30.5.12/24, asNumber: 65012}
workloads:
  - {name: w1, host: h1}
  - {name: w2, host: h2}
externalHosts:
  - {name: ext1, address: 10.200.0.10/24}
`
	l := upLab(t, "filt"+kind[:1], topo, "open.yaml", "nomesh.yaml")
	router := netip.MustParseAddr("172.30.5.1")
	ext := netip.MustParsePrefix("10.200.0.0/24")
	def := netip.MustParsePrefix("0.0.0.0/0")
	b1, b2 := block(t, l, "w1"), block(t, l, "w2")
	routerHas := func(p netip.Prefix) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		table, err := l.RouterRoutes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(table, p.String())
	}

	// Before: everything flows.
	eventually(t, 20*time.Second, "hosts learn the external segment, the router both blocks", func() error {
		for _, h := range []string{"h1", "h2"} {
			if r := route(t, l, h, ext); !learnedVia(r, router) {
				return fmt.Errorf("%s: route %s: %s", h, ext, describe(r))
			}
		}
		if !routerHas(b1) || !routerHas(b2) {
			return fmt.Errorf("the router lacks %s or %s", b1, b2)
		}
		return nil
	})

	apply(t, l, fmt.Sprintf(`
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: tor}
spec:
  importV4:
    - {action: Reject, matchOperator: In, cidr: 10.200.0.0/16}
  exportV4:
    - {action: Reject, matchOperator: Equal, cidr: %s}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: lab-tor}
spec: {peerIP: 172.30.5.1, asNumber: 65001, filters: [tor]}
`, b1))
	eventually(t, 20*time.Second, "the filter takes the external segment out of the hosts and h1's block out of the router", func() error {
		for _, h := range []string{"h1", "h2"} {
			if r := route(t, l, h, ext); r != nil {
				return fmt.Errorf("%s still has a route to %s: %s", h, ext, describe(r))
			}
		}
		if routerHas(b1) {
			return fmt.Errorf("the router still has h1's block %s", b1)
		}
		return nil
	})
	// What the filter does not name still flows, both ways, once the
	// sessions are back (a change of export rules that can reject
	// re-establishes the session: GoBGP cannot withdraw what it sent).
	eventually(t, 30*time.Second, "the rest flows again", func() error {
		for _, h := range []string{"h1", "h2"} {
			if r := route(t, l, h, def); !learnedVia(r, router) {
				return fmt.Errorf("%s: the default route %s, want one learned from the router", h, describe(r))
			}
			if r := route(t, l, h, ext); r != nil {
				return fmt.Errorf("%s has a route to %s again: %s", h, ext, describe(r))
			}
		}
		if !routerHas(b2) {
			return fmt.Errorf("the router lacks h2's block %s, which the filter does not name", b2)
		}
		if routerHas(b1) {
			return fmt.Errorf("the router has h1's block %s again", b1)
		}
		// (The router passes h2's own address on as the next hop: same link.)
		if r := route(t, l, "h1", b2); len(nexthops(r)) == 0 {
			return fmt.Errorf("h1: route to h2's block %s: %s, want one learned through the router", b2, describe(r))
		}
		return nil
	})

	// The filter lifted: both come back without the sessions being reset.
	apply(t, l, `
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: lab-tor}
spec: {peerIP: 172.30.5.1, asNumber: 65001}
`)
	eventually(t, 20*time.Second, "the external segment and h1's block come back", func() error {
		for _, h := range []string{"h1", "h2"} {
			if r := route(t, l, h, ext); !learnedVia(r, router) {
				return fmt.Errorf("%s: route %s: %s", h, ext, describe(r))
			}
		}
		if !routerHas(b1) {
			return fmt.Errorf("the router lacks h1's block %s", b1)
		}
		return nil
	})
}
