package verdict

import (
	"net/netip"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

func u8(v uint8) *uint8 { return &v }

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestMatches(t *testing.T) {
	sets := map[string]*hoststate.IPSet{
		"web": {ID: "web", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.0.0.0/24")}, {Prefix: netip.MustParsePrefix("fd00::/64")}}},
		"np":  {ID: "np", Type: hoststate.IPSetNetPorts, Members: []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.0.1.1/32"), Protocol: 6, Port: 8080}}},
	}
	tcp := func(src, dst string, dport uint16) Packet {
		return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: 6, SrcPort: 40000, DstPort: dport}
	}
	ping := Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.1.1"), Protocol: 1, ICMPType: 8}
	ping6 := Packet{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00:1::1"), Protocol: 58, ICMPType: 128}
	ports := func(a, b uint16) []hoststate.PortRange { return []hoststate.PortRange{{First: a, Last: b}} }
	cases := []struct {
		name string
		r    hoststate.Rule
		p    Packet
		want bool
	}{
		{"empty rule matches all", hoststate.Rule{}, ping, true},
		{"ipVersion 6 on v4", hoststate.Rule{IPVersion: 6}, ping, false},
		{"ipVersion 6 on v6", hoststate.Rule{IPVersion: 6}, ping6, true},
		{"protocol", hoststate.Rule{Protocol: u8(17)}, tcp("10.0.0.1", "10.0.1.1", 80), false},
		{"ports imply a protocol with ports", hoststate.Rule{DstPorts: ports(1, 65535)}, ping, false},
		{"not-ports imply it too", hoststate.Rule{NotDstPorts: ports(22, 22)}, ping, false},
		{"port range", hoststate.Rule{Protocol: u8(6), DstPorts: ports(8000, 9000)}, tcp("10.0.0.1", "10.0.1.1", 8080), true},
		{"not port", hoststate.Rule{Protocol: u8(6), NotDstPorts: ports(8080, 8080)}, tcp("10.0.0.1", "10.0.1.1", 8080), false},
		{"source port", hoststate.Rule{SrcPorts: ports(40000, 40000)}, tcp("10.0.0.1", "10.0.1.1", 1), true},
		{"named port", hoststate.Rule{Protocol: u8(6), DstNamedPortIPSetIDs: []string{"np"}}, tcp("10.0.0.1", "10.0.1.1", 8080), true},
		{"named port, other address", hoststate.Rule{Protocol: u8(6), DstNamedPortIPSetIDs: []string{"np"}}, tcp("10.0.0.1", "10.0.1.2", 8080), false},
		{"numeric or named", hoststate.Rule{Protocol: u8(6), DstPorts: ports(80, 80), DstNamedPortIPSetIDs: []string{"np"}}, tcp("10.0.0.1", "10.0.1.2", 80), true},
		{"not named port", hoststate.Rule{Protocol: u8(6), NotDstNamedPortIPSetIDs: []string{"np"}}, tcp("10.0.0.1", "10.0.1.1", 8080), false},
		{"source set", hoststate.Rule{SrcIPSetIDs: []string{"web"}}, ping, true},
		{"source set v6", hoststate.Rule{SrcIPSetIDs: []string{"web"}}, ping6, true},
		{"destination set", hoststate.Rule{DstIPSetIDs: []string{"web"}}, ping, false},
		{"unknown set never matches", hoststate.Rule{SrcIPSetIDs: []string{"gone"}}, ping, false},
		{"not unknown set always does", hoststate.Rule{NotSrcIPSetIDs: []string{"gone"}}, ping, true},
		{"not set", hoststate.Rule{NotSrcIPSetIDs: []string{"web"}}, ping, false},
		{"nets", hoststate.Rule{SrcNets: pfx("10.0.0.0/8")}, ping, true},
		{"nets of the other family", hoststate.Rule{SrcNets: pfx("fd00::/8")}, ping, false},
		{"not nets", hoststate.Rule{NotDstNets: pfx("10.0.1.0/24")}, ping, false},
		{"icmp type", hoststate.Rule{Protocol: u8(1), ICMPType: u8(8)}, ping, true},
		{"icmp type and code", hoststate.Rule{Protocol: u8(1), ICMPType: u8(8), ICMPCode: u8(1)}, ping, false},
		{"icmp type without protocol means icmp", hoststate.Rule{ICMPType: u8(8)}, tcp("10.0.0.1", "10.0.1.1", 8), false},
		{"not icmp type", hoststate.Rule{Protocol: u8(1), NotICMPType: u8(8)}, ping, false},
		{"not icmp type, other type", hoststate.Rule{Protocol: u8(1), NotICMPType: u8(0)}, ping, true},
		{"icmpv6 type", hoststate.Rule{Protocol: u8(58), ICMPType: u8(128)}, ping6, true},
		{"not protocol", hoststate.Rule{NotProtocol: u8(1)}, ping, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Matches(c.r, c.p, sets); got != c.want {
				t.Errorf("Matches = %v, want %v", got, c.want)
			}
		})
	}
}

func TestWalk(t *testing.T) {
	h := NewHost()
	rec := &Recorder{Host: h}
	id := func(n string) hoststate.PolicyID {
		return hoststate.PolicyID{Tier: "t", Kind: "GlobalNetworkPolicy", Name: n}
	}
	rec.OnPolicyUpdate(hoststate.Policy{ID: id("pass"), InboundRules: []hoststate.Rule{{Action: hoststate.Pass}}})
	rec.OnPolicyUpdate(hoststate.Policy{ID: id("deny"), InboundRules: []hoststate.Rule{{Action: hoststate.Deny}}})
	rec.OnPolicyUpdate(hoststate.Policy{ID: id("none"), InboundRules: []hoststate.Rule{{Action: hoststate.Allow, Protocol: u8(17)}}})
	rec.OnProfileUpdate(hoststate.Profile{Name: "p", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	p := Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Protocol: 1, ICMPType: 8}
	cases := []struct {
		name     string
		tiers    []hoststate.TierPolicies
		profiles []string
		want     hoststate.Action
		steps    int
	}{
		{"pass skips the deny after it", []hoststate.TierPolicies{{Name: "t", IngressPolicies: []hoststate.PolicyID{id("pass"), id("deny")}}}, []string{"p"}, hoststate.Allow, 5},
		{"tier end denies", []hoststate.TierPolicies{{Name: "t", IngressPolicies: []hoststate.PolicyID{id("none")}}}, []string{"p"}, hoststate.Deny, 4},
		{"tier end passes", []hoststate.TierPolicies{{Name: "t", DefaultAction: hoststate.Pass, IngressPolicies: []hoststate.PolicyID{id("none")}}}, []string{"p"}, hoststate.Allow, 6},
		{"missing policy skipped, tier left out", []hoststate.TierPolicies{{Name: "t", IngressPolicies: []hoststate.PolicyID{id("gone")}}}, []string{"p"}, hoststate.Allow, 3},
		{"missing profile skipped, then drop", nil, []string{"gone"}, hoststate.Deny, 2},
		{"egress-only tier does not apply", []hoststate.TierPolicies{{Name: "t", EgressPolicies: []hoststate.PolicyID{id("deny")}}}, []string{"p"}, hoststate.Allow, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec.OnWorkloadEndpointUpdate(hoststate.WorkloadEndpoint{ID: "ns/w", IPv4Nets: pfx("10.0.0.2/32"), Tiers: c.tiers, ProfileIDs: c.profiles})
			tr, err := h.Workload("ns/w", Ingress, p)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Verdict != c.want || len(tr.Steps) != c.steps {
				t.Errorf("verdict %s with %d steps, want %s with %d: %+v", tr.Verdict, len(tr.Steps), c.want, c.steps, tr.Steps)
			}
		})
	}
	if _, err := h.Workload("ns/other", Ingress, p); err == nil {
		t.Error("an endpoint the host does not have: no error")
	}
	tr, _ := h.Workload("ns/w", Egress, Packet{Src: netip.MustParseAddr("10.9.9.9"), Dst: p.Dst, Protocol: 1})
	if tr.Verdict != hoststate.Deny {
		t.Errorf("spoofed source allowed: %+v", tr)
	}
}

func TestRecorderDeltas(t *testing.T) {
	r := NewRecorder()
	m := func(s string) hoststate.IPSetMember { return hoststate.IPSetMember{Prefix: netip.MustParsePrefix(s)} }
	r.OnIPSetUpdate(hoststate.IPSet{ID: "s", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{m("10.0.0.1/32"), m("10.0.0.2/32")}})
	r.OnIPSetDelta("s", []hoststate.IPSetMember{m("10.0.0.3/32")}, []hoststate.IPSetMember{m("10.0.0.1/32")})
	got := r.Host.Sets["s"].Members
	if len(got) != 2 || got[0] != m("10.0.0.2/32") || got[1] != m("10.0.0.3/32") {
		t.Errorf("members after delta: %v", got)
	}
	r.OnIPSetRemove("s")
	if _, ok := r.Host.Sets["s"]; ok {
		t.Error("set still there after remove")
	}
}
