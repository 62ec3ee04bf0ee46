package routing

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	gobgp "github.com/osrg/gobgp/v3/api"

	"github.com/servalnet/serval/internal/api"
)

// decodeFilters reads BGPFilter manifests, validated as servalctl would.
func decodeFilters(t *testing.T, manifest string) []*api.BGPFilter {
	t.Helper()
	docs, err := api.Decode("test", []byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.BGPFilter
	for _, d := range docs {
		f := d.Resource.(*api.BGPFilter)
		if err := api.Validate(f); err != nil {
			t.Fatalf("manifest does not validate: %v", err)
		}
		out = append(out, f)
	}
	return out
}

// renderPolicies prints the GoBGP policies and sets as one line each.
func renderPolicies(sets []*gobgp.DefinedSet, pols ...*gobgp.Policy) string {
	var b strings.Builder
	for _, s := range sets {
		fmt.Fprintf(&b, "set %s %s", s.DefinedType, s.Name)
		for _, l := range s.List {
			fmt.Fprintf(&b, " %s", l)
		}
		for _, p := range s.Prefixes {
			fmt.Fprintf(&b, " %s %d..%d", p.IpPrefix, p.MaskLengthMin, p.MaskLengthMax)
		}
		b.WriteString("\n")
	}
	for _, p := range pols {
		for _, st := range p.Statements {
			c := st.Conditions
			fmt.Fprintf(&b, "%s: %s nbr=%s", p.Name, st.Name, c.NeighborSet.Name)
			for _, f := range c.AfiSafiIn {
				fmt.Fprintf(&b, " afi=%s", f.Afi)
			}
			if c.PrefixSet != nil {
				fmt.Fprintf(&b, " prefix=%s(%s)", c.PrefixSet.Type, c.PrefixSet.Name)
			}
			if c.RouteType != gobgp.Conditions_ROUTE_TYPE_NONE {
				fmt.Fprintf(&b, " type=%s", c.RouteType)
			}
			fmt.Fprintf(&b, " -> %s\n", st.Actions.RouteAction)
		}
	}
	return strings.TrimSpace(b.String())
}

func TestFilterPolicies(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name     string
		manifest string
		peer     netip.Addr
		want     string
	}{{
		name: "calico sample, v4 session",
		manifest: `
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: f}
spec:
  exportV4:
    - {action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}
  importV4:
    - {action: Accept, matchOperator: In, cidr: 55.0.0.0/16, prefixLength: {min: 30}}
    - {action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16}
  importV6:
    - {action: Reject}
`,
		peer: v4,
		want: `set NEIGHBOR serval-peer-192.0.2.1 192.0.2.1/32
set PREFIX serval-prefixes-0 55.0.0.0/16 30..32
set PREFIX serval-prefixes-1 44.0.0.0/16 16..32
set PREFIX serval-prefixes-2 77.0.0.0/16 16..32
serval-filters-import: serval-peer-192.0.2.1-import-0.0 nbr=serval-peer-192.0.2.1 afi=AFI_IP prefix=ANY(serval-prefixes-0) -> ACCEPT
serval-filters-import: serval-peer-192.0.2.1-import-1.0 nbr=serval-peer-192.0.2.1 afi=AFI_IP prefix=INVERT(serval-prefixes-1) -> REJECT
serval-filters-export: serval-peer-192.0.2.1-export-0.0 nbr=serval-peer-192.0.2.1 afi=AFI_IP prefix=ANY(serval-prefixes-2) type=ROUTE_TYPE_INTERNAL -> ACCEPT
serval-filters-export: serval-peer-192.0.2.1-export-0.1 nbr=serval-peer-192.0.2.1 afi=AFI_IP prefix=ANY(serval-prefixes-2) type=ROUTE_TYPE_EXTERNAL -> ACCEPT`,
	}, {
		name: "v6 session takes the V6 lists; exact matches and match-all",
		manifest: `
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: f}
spec:
  importV4:
    - {action: Reject}
  importV6:
    - {action: Accept, matchOperator: Equal, cidr: "5000::/64"}
    - {action: Reject, matchOperator: NotEqual, cidr: "fd00::/48"}
    - {action: Reject, source: RemotePeers}
  exportV6:
    - {action: Reject, prefixLength: {min: 120}}
`,
		peer: v6,
		want: `set NEIGHBOR serval-peer-2001:db8::1 2001:db8::1/128
set PREFIX serval-prefixes-0 5000::/64 64..64
set PREFIX serval-prefixes-1 fd00::/48 48..48
set PREFIX serval-prefixes-2 ::/0 120..128
serval-filters-import: serval-peer-2001:db8::1-import-0.0 nbr=serval-peer-2001:db8::1 afi=AFI_IP6 prefix=ANY(serval-prefixes-0) -> ACCEPT
serval-filters-import: serval-peer-2001:db8::1-import-1.0 nbr=serval-peer-2001:db8::1 afi=AFI_IP6 prefix=INVERT(serval-prefixes-1) -> REJECT
serval-filters-import: serval-peer-2001:db8::1-import-2.0 nbr=serval-peer-2001:db8::1 afi=AFI_IP6 -> REJECT
serval-filters-export: serval-peer-2001:db8::1-export-0.0 nbr=serval-peer-2001:db8::1 afi=AFI_IP6 prefix=ANY(serval-prefixes-2) -> REJECT`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := decodeFilters(t, tc.manifest)
			pf, err := resolveFilters([]string{"f"}, map[string]*api.BGPFilter{"f": fs[0]}, tc.peer.Is6())
			if err != nil {
				t.Fatal(err)
			}
			sets, imp, exp := filterPolicies([]Peer{{Address: tc.peer, Filters: pf}, {Address: netip.MustParseAddr("192.0.2.99")}})
			if got := renderPolicies(sets, imp, exp); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestComputeFilters: filters are resolved per session family, in the
// order the BGPPeer lists them; a session whose filter is missing or
// cannot be honoured is left out and reported.
func TestComputeFilters(t *testing.T) {
	fs := decodeFilters(t, `
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: one}
spec:
  importV4: [{action: Reject, matchOperator: In, cidr: 10.1.0.0/16}]
  importV6: [{action: Reject, matchOperator: In, cidr: "fd01::/48"}]
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: two}
spec:
  importV4: [{action: Accept}]
`)
	// Written to the datastore behind servalctl's back.
	fs = append(fs, &api.BGPFilter{ObjectMeta: api.ObjectMeta{Name: "iface"}, Spec: api.BGPFilterSpec{
		ExportV4: []api.BGPFilterRule{{Action: "Reject", Interface: "cali*"}},
	}})
	node := &api.Node{ObjectMeta: api.ObjectMeta{Name: "a"}, Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: "192.0.2.10/24", IPv6Address: "2001:db8::10/64"}}}
	peer := func(name, ip string, filters ...string) *api.BGPPeer {
		return &api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: name}, Spec: api.BGPPeerSpec{PeerIP: ip, ASNumber: asn(65001), Filters: filters}}
	}
	d, err := Compute(Input{NodeName: "a", Nodes: []*api.Node{node}, Filters: fs, Peers: []*api.BGPPeer{
		peer("v4", "192.0.2.1", "one", "two"),
		peer("v6", "2001:db8::1", "one", "two"),
		peer("missing", "192.0.2.2", "one", "nope"),
		peer("iface", "192.0.2.3", "iface"),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range d.Peers {
		var rules []string
		for _, r := range p.Filters.Import {
			rules = append(rules, fmt.Sprintf("%s reject=%v %s %s", r.From, r.Reject, r.Op, r.CIDR))
		}
		got = append(got, p.Address.String()+": "+strings.Join(rules, "; "))
	}
	want := []string{
		"192.0.2.1: bgpfilter/one spec.importV4[0] reject=true In 10.1.0.0/16; bgpfilter/two spec.importV4[0] reject=false  0.0.0.0/0",
		"2001:db8::1: bgpfilter/one spec.importV6[0] reject=true In fd01::/48",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("peers\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantProblems := []string{
		`BGPPeer "missing": filter "nope": no such BGPFilter; session skipped`,
		`BGPPeer "iface": bgpfilter/iface spec.exportV4[0]: interface "cali*": interface matches are not supported (Serval exports no interface routes); session skipped`,
	}
	if strings.Join(d.Problems, "\n") != strings.Join(wantProblems, "\n") {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(d.Problems, "\n"), strings.Join(wantProblems, "\n"))
	}
}

// TestSpeakerFilters runs two speakers on loopback with BGPPeers between
// them: the receiver's import filter and the sender's export filter each
// keep one block out of the receiver's RIB and kernel, and a change of a
// filter takes effect on the established session without resetting it.
func TestSpeakerFilters(t *testing.T) {
	c := newCluster(t, false)
	aIP := c.addNode("a", 61, nil, "")
	bIP := c.addNode("b", 62, nil, "")
	c.blocks["a"] = []netip.Prefix{
		netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.65.2.0/26"), netip.MustParsePrefix("10.65.3.0/26"),
	}
	c.peers = append(c.peers,
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "a-to-b"}, Spec: api.BGPPeerSpec{Node: "a", PeerSelector: "kubernetes.io/hostname == 'b'", Filters: []string{"export"}}},
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "b-to-a"}, Spec: api.BGPPeerSpec{Node: "b", PeerSelector: "kubernetes.io/hostname == 'a'", Filters: []string{"import"}}},
	)
	c.nodes[0].Labels = map[string]string{"kubernetes.io/hostname": "a"}
	c.nodes[1].Labels = map[string]string{"kubernetes.io/hostname": "b"}
	for _, p := range c.peers {
		p.Spec.ReversePeering = ptrTo("Manual")
	}
	c.filters = decodeFilters(t, `
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: export}
spec:
  exportV4: [{action: Reject, matchOperator: Equal, cidr: 10.65.3.0/26}]
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: import}
spec:
  importV4:
    - {action: Accept, matchOperator: Equal, cidr: 10.65.1.0/26}
    - {action: Reject, matchOperator: In, cidr: 10.65.0.0/16, prefixLength: {max: 26}}
`)
	a, b := c.start("a"), c.start("b")
	eventually(t, 20*time.Second, established(b, 1))
	eventually(t, 10*time.Second, ribHas(b, "10.65.1.0/26", aIP.String()))
	// 10.65.2.0/26 reaches b and is rejected on import; 10.65.3.0/26 is
	// never sent. Give both time to (not) arrive.
	time.Sleep(time.Second)
	for _, p := range []string{"10.65.2.0/26", "10.65.3.0/26"} {
		if msg := ribHas(b, p)(); msg != "" {
			t.Error(msg)
		}
	}
	eventually(t, 5*time.Second, kernelHas(b, "10.65.1.0/26 via 127.0.0.61 dev#1 proto 80"))
	st, _ := a.Status(context.Background())
	if len(st) != 1 || st[0].RoutesAdvertised != 2 {
		t.Errorf("a advertises %+v, want 2 routes (the export filter keeps 10.65.3.0/26)", st)
	}
	since := st[0].Since

	// Lift both filters' rejections: the session stays, the routes come.
	c.filters[0].Spec.ExportV4 = nil
	c.filters[1].Spec.ImportV4 = c.filters[1].Spec.ImportV4[:1]
	c.reconcile(a, b)
	eventually(t, 10*time.Second, ribHas(b, "10.65.2.0/26", aIP.String()))
	eventually(t, 10*time.Second, ribHas(b, "10.65.3.0/26", aIP.String()))
	if st, _ := a.Status(context.Background()); !st[0].Since.Equal(since) {
		t.Errorf("the session was reset by lifting filters (since %v, was %v)", st[0].Since, since)
	}

	// A new export rejection withdraws what b already has.
	c.filters[0].Spec.ExportV4 = []api.BGPFilterRule{{Action: "Reject", MatchOperator: "In", CIDR: "10.65.2.0/24"}}
	c.reconcile(a)
	eventually(t, 20*time.Second, ribHas(b, "10.65.2.0/26"))
	eventually(t, 20*time.Second, ribHas(b, "10.65.3.0/26", aIP.String()))
	eventually(t, 20*time.Second, ribHas(b, "10.65.1.0/26", aIP.String()))
	_ = bIP
}
