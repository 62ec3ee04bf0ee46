package dataplane

import (
	"net/netip"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

const (
	tcp = 6
	udp = 17
)

// oneRule programs one endpoint selected by one policy with the given
// inbound rule, so the golden file shows that rule's chain.
func oneRule(r hoststate.Rule) func(d *testDP) {
	return func(d *testDP) {
		d.OnPolicyUpdate(inPolicy("default", "p1", r))
		d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"),
			[]hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}))
	}
}

func withSets(sets []hoststate.IPSet, f func(d *testDP)) func(d *testDP) {
	return func(d *testDP) {
		for _, s := range sets {
			d.OnIPSetUpdate(s)
		}
		f(d)
	}
}

var (
	setA = hoststate.IPSet{ID: "sel-a", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{
		{Prefix: netip.MustParsePrefix("10.65.0.2/32")}, {Prefix: netip.MustParsePrefix("fd00::2/128")}}}
	setB = hoststate.IPSet{ID: "sel-b", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{
		{Prefix: netip.MustParsePrefix("10.65.0.3/32")}}}
	setNP = hoststate.IPSet{ID: "np-http", Type: hoststate.IPSetNetPorts, Members: []hoststate.IPSetMember{
		{Prefix: netip.MustParsePrefix("10.65.0.1/32"), Protocol: tcp, Port: 8080},
		{Prefix: netip.MustParsePrefix("fd00::1/128"), Protocol: tcp, Port: 8080}}}
)

func TestRenderGolden(t *testing.T) {
	cases := []struct {
		name  string
		setup func(d *testDP)
		full  bool // keep base chains and empty sets in the golden text
	}{
		{"allow_all", oneRule(hoststate.Rule{Action: hoststate.Allow, ID: "r0"}), false},
		{"deny", oneRule(hoststate.Rule{Action: hoststate.Deny, ID: "r0"}), false},
		{"pass", oneRule(hoststate.Rule{Action: hoststate.Pass, ID: "r0"}), false},
		{"log", oneRule(hoststate.Rule{Action: hoststate.Log, ID: "r0"}), false},
		{"protocol", oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), ID: "r0"}), false},
		{"not_protocol", oneRule(hoststate.Rule{Action: hoststate.Allow, NotProtocol: u8(udp), ID: "r0"}), false},
		{"icmp_type_code", oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(1), ICMPType: u8(8), ICMPCode: u8(0), ID: "r0"}), false},
		{"not_icmp", oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(1), NotICMPType: u8(3), NotICMPCode: u8(4), ID: "r0"}), false},
		{"icmpv6", oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(58), ICMPType: u8(128), ID: "r0"}), false},
		{"icmp_type_no_protocol", oneRule(hoststate.Rule{Action: hoststate.Allow, ICMPType: u8(8), ID: "r0"}), false},
		{"src_nets_mixed", oneRule(hoststate.Rule{Action: hoststate.Allow, SrcNets: pfx("10.0.0.0/8", "10.1.0.0/16", "192.168.1.5/32", "fd00::/64"), ID: "r0"}), false},
		{"not_dst_nets", oneRule(hoststate.Rule{Action: hoststate.Deny, NotDstNets: pfx("10.65.0.0/16"), ID: "r0"}), false},
		{"ip_version_6", oneRule(hoststate.Rule{Action: hoststate.Allow, IPVersion: 6, Protocol: u8(tcp), ID: "r0"}), false},
		{"ip_sets", withSets([]hoststate.IPSet{setA, setB}, oneRule(hoststate.Rule{Action: hoststate.Allow,
			SrcIPSetIDs: []string{"sel-a"}, NotSrcIPSetIDs: []string{"sel-b"}, DstIPSetIDs: []string{"sel-b"}, ID: "r0"})), false},
		{"unknown_sets", withSets([]hoststate.IPSet{setA}, oneRule(hoststate.Rule{Action: hoststate.Allow,
			SrcIPSetIDs: []string{"sel-a"}, NotSrcIPSetIDs: []string{"missing"}, ID: "r0"})), false},
		{"unknown_positive_set", oneRule(hoststate.Rule{Action: hoststate.Allow, SrcIPSetIDs: []string{"missing"}, ID: "r0"}), false},
		{"dst_ports", oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp),
			DstPorts: []hoststate.PortRange{{First: 443, Last: 443}, {First: 80, Last: 80}, {First: 8000, Last: 8100}, {First: 8050, Last: 8200}}, ID: "r0"}), false},
		{"single_port_range", oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(udp),
			DstPorts: []hoststate.PortRange{{First: 5000, Last: 5010}}, ID: "r0"}), false},
		{"not_src_ports", oneRule(hoststate.Rule{Action: hoststate.Deny, Protocol: u8(tcp),
			NotSrcPorts: []hoststate.PortRange{{First: 1, Last: 1023}}, ID: "r0"}), false},
		{"ports_without_protocol", oneRule(hoststate.Rule{Action: hoststate.Allow, DstPorts: []hoststate.PortRange{{First: 53, Last: 53}}, ID: "r0"}), false},
		{"named_ports", withSets([]hoststate.IPSet{setNP}, oneRule(hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp),
			DstPorts: []hoststate.PortRange{{First: 9090, Last: 9090}}, DstNamedPortIPSetIDs: []string{"np-http"}, ID: "r0"})), false},
		{"not_named_ports", withSets([]hoststate.IPSet{setNP}, oneRule(hoststate.Rule{Action: hoststate.Deny, Protocol: u8(tcp),
			NotDstNamedPortIPSetIDs: []string{"np-http"}, SrcNamedPortIPSetIDs: []string{"np-http"}, ID: "r0"})), false},
		{"everything", withSets([]hoststate.IPSet{setA, setB}, oneRule(hoststate.Rule{Action: hoststate.Allow, IPVersion: 4,
			Protocol: u8(tcp), SrcNets: pfx("10.0.0.0/8"), NotSrcNets: pfx("10.9.0.0/16"), DstNets: pfx("10.65.0.0/16", "10.66.0.0/16"),
			SrcIPSetIDs: []string{"sel-a"}, NotDstIPSetIDs: []string{"sel-b"},
			SrcPorts: []hoststate.PortRange{{First: 1024, Last: 65535}}, DstPorts: []hoststate.PortRange{{First: 80, Last: 80}},
			NotDstPorts: []hoststate.PortRange{{First: 81, Last: 81}}, ID: "r0"})), false},
		{"tiers_pass_default", func(d *testDP) {
			d.OnPolicyUpdate(inPolicy("security", "deny-bad", hoststate.Rule{Action: hoststate.Deny, SrcNets: pfx("10.9.0.0/16"), ID: "r0"}))
			d.OnPolicyUpdate(inPolicy("security", "pass-rest", hoststate.Rule{Action: hoststate.Pass, ID: "r0"}))
			d.OnPolicyUpdate(inPolicy("app", "allow-web", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), DstPorts: []hoststate.PortRange{{First: 80, Last: 80}}, ID: "r0"}))
			d.OnPolicyUpdate(inPolicy("platform", "noop", hoststate.Rule{Action: hoststate.Log, ID: "r0"}))
			d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), []hoststate.TierPolicies{
				tierIn("security", hoststate.Deny, pid("security", "deny-bad"), pid("security", "pass-rest")),
				tierIn("platform", hoststate.Pass, pid("platform", "noop")),
				tierIn("app", hoststate.Deny, pid("app", "allow-web")),
				{Name: "egress-only", EgressPolicies: []hoststate.PolicyID{pid("egress-only", "x")}},
			}))
		}, false},
		{"profiles", func(d *testDP) {
			d.OnProfileUpdate(hoststate.Profile{Name: "kns.default", InboundRules: []hoststate.Rule{{Action: hoststate.Allow, ID: "pr0"}},
				OutboundRules: []hoststate.Rule{{Action: hoststate.Allow, ID: "pr1"}}})
			d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil, "kns.default", "ksa.default.missing"))
		}, false},
		{"no_policy_drop_and_antispoof", func(d *testDP) {
			d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32", "fd00::1/128"), nil))
			d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), nil))
		}, false},
		{"unknown_policy_skipped", func(d *testDP) {
			d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"),
				[]hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "not-yet"))}))
		}, false},
		{"network_set_overlaps", withSets([]hoststate.IPSet{{ID: "netset", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{
			{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, {Prefix: netip.MustParsePrefix("10.1.0.0/16")},
			{Prefix: netip.MustParsePrefix("192.168.0.0/24")}, {Prefix: netip.MustParsePrefix("192.168.1.0/24")},
			{Prefix: netip.MustParsePrefix("0.0.0.0/0")}, {Prefix: netip.MustParsePrefix("2001:db8::/32")}}}},
			oneRule(hoststate.Rule{Action: hoststate.Allow, SrcIPSetIDs: []string{"netset"}, ID: "r0"})), false},
		{"host_endpoint", func(d *testDP) {
			d.OnPolicyUpdate(hoststate.Policy{ID: pid("default", "ssh"), InboundRules: []hoststate.Rule{{Action: hoststate.Allow, Protocol: u8(tcp), DstPorts: []hoststate.PortRange{{First: 22, Last: 22}}, ID: "r0"}}})
			d.OnPolicyUpdate(hoststate.Policy{ID: pid("default", "fwd"), ApplyOnForward: true, InboundRules: []hoststate.Rule{{Action: hoststate.Deny, SrcNets: pfx("192.0.2.0/24"), ID: "r0"}}})
			d.OnPolicyUpdate(hoststate.Policy{ID: pid("default", "pre"), PreDNAT: true, InboundRules: []hoststate.Rule{{Action: hoststate.Deny, Protocol: u8(tcp), DstPorts: []hoststate.PortRange{{First: 30000, Last: 32767}}, ID: "r0"}}})
			d.OnPolicyUpdate(hoststate.Policy{ID: pid("default", "raw"), Untracked: true, InboundRules: []hoststate.Rule{{Action: hoststate.Allow, Protocol: u8(udp), DstPorts: []hoststate.PortRange{{First: 53, Last: 53}}, ID: "r0"}}})
			d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "node1-eth0", InterfaceName: "eth0",
				Tiers:          []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "ssh"))},
				ForwardTiers:   []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "fwd"))},
				PreDNATTiers:   []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "pre"))},
				UntrackedTiers: []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "raw"))},
			})
		}, false},
		{"host_endpoint_wildcard", func(d *testDP) {
			d.OnProfileUpdate(hoststate.Profile{Name: "projectcalico-default-allow", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
			d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "node1-all", InterfaceName: "*", ProfileIDs: []string{"projectcalico-default-allow"}})
			d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "node1-eth1", InterfaceName: "eth1"})
		}, true},
		{"base_default", func(d *testDP) {}, true},
		{"base_failsafe_accept", func(d *testDP) {
			d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali", "tap"}, DefaultEndpointToHostAction: "Accept",
				FailsafeInboundHostPorts:  []hoststate.ProtoPort{{Protocol: tcp, Port: 22}, {Protocol: udp, Port: 68}, {Protocol: tcp, Port: 179, Net: netip.MustParsePrefix("10.0.0.0/8")}},
				FailsafeOutboundHostPorts: []hoststate.ProtoPort{{Protocol: udp, Port: 53}, {Protocol: tcp, Port: 2379}}})
		}, true},
		{"base_return", func(d *testDP) {
			d.OnConfigUpdate(hoststate.Config{DefaultEndpointToHostAction: "Return", LogPrefix: "svl"})
		}, true},
		{"nat_outgoing", func(d *testDP) {
			d.OnIPPoolUpdate("p1", hoststate.IPPool{CIDR: netip.MustParsePrefix("10.65.0.0/16"), NATOutgoing: true})
			d.OnIPPoolUpdate("p2", hoststate.IPPool{CIDR: netip.MustParsePrefix("10.66.0.0/16")})
			d.OnIPPoolUpdate("p3", hoststate.IPPool{CIDR: netip.MustParsePrefix("fd00:65::/48"), NATOutgoing: true})
		}, false},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDP(t)
			c.setup(d)
			d.OnInSync()
			d.apply(t)
			got := d.nft.Dump()
			if want := d.Dump(); got != want {
				t.Fatalf("fake kernel differs from desired state\n--- kernel ---\n%s\n--- desired ---\n%s", got, want)
			}
			if !c.full {
				got = trimDump(got)
			}
			golden(t, c.name, got)
			// A second Apply with nothing new writes nothing.
			n := len(d.nft.Transactions)
			d.apply(t)
			if len(d.nft.Transactions) != n {
				t.Errorf("idempotence: second Apply wrote %v", d.lastOps())
			}
		})
	}
}
