package dataplane

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
	vd "github.com/servalnet/serval/internal/verdict"
)

// TestVerdictAgreesWithKernel cross-checks internal/verdict, which
// servalctl why uses to explain a verdict, against the nftables table this
// package programs into a real kernel from the same hoststate: for each
// policy layout, each packet's verdict (w1's egress, then w2's ingress)
// must be what the kernel does to it.
func TestVerdictAgreesWithKernel(t *testing.T) {
	tp := newTopo(t)
	d := tp.d
	// The recorder gets what newTopo gave the dataplane, then every update.
	rec := vd.NewRecorder()
	rec.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}})
	rec.OnProfileUpdate(hoststate.Profile{Name: "allow-out", OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	rec.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	rec.OnIPSetUpdate(hoststate.IPSet{ID: "w1", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.65.0.1/32")}}})
	rec.OnIPSetUpdate(hoststate.IPSet{ID: "np-web", Type: hoststate.IPSetNetPorts, Members: []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.65.0.2/32"), Protocol: tcp, Port: 8080}}})
	rec.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil, "allow-out"))

	pol := func(tier, name string, rules ...hoststate.Rule) hoststate.PolicyID {
		p := inPolicy(tier, name, rules...)
		d.OnPolicyUpdate(p)
		rec.OnPolicyUpdate(p)
		return pid(tier, name)
	}
	ports := func(a, b uint16) []hoststate.PortRange { return []hoststate.PortRange{{First: a, Last: b}} }
	allow80 := pol("t1", "allow-80", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), DstPorts: ports(80, 80), ID: "r"})
	denyW1 := pol("t1", "deny-w1", hoststate.Rule{Action: hoststate.Deny, SrcIPSetIDs: []string{"w1"}, ID: "r"})
	logAll := pol("t1", "log", hoststate.Rule{Action: hoststate.Log, ID: "r"})
	pass := pol("t1", "pass", hoststate.Rule{Action: hoststate.Pass, Protocol: u8(tcp), NotDstPorts: ports(9090, 9090), ID: "r"})
	named := pol("t1", "named", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), DstPorts: ports(80, 80), DstNamedPortIPSetIDs: []string{"np-web"}, ID: "r"})
	rangeNet := pol("t1", "range-net", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcNets: pfx("10.65.0.0/24"), DstPorts: ports(8000, 9000), ID: "r"})
	notW1 := pol("t1", "not-w1", hoststate.Rule{Action: hoststate.Allow, NotSrcIPSetIDs: []string{"w1"}, ID: "r"})
	icmpEcho := pol("t2", "icmp-echo", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(1), ICMPType: u8(8), ID: "r"})
	allowAll := pol("t2", "allow-all", hoststate.Rule{Action: hoststate.Allow, ID: "r"})
	t1 := func(def hoststate.Action, ps ...hoststate.PolicyID) hoststate.TierPolicies {
		return tierIn("t1", def, ps...)
	}
	t2 := func(ps ...hoststate.PolicyID) hoststate.TierPolicies { return tierIn("t2", hoststate.Deny, ps...) }

	layouts := []struct {
		name     string
		tiers    []hoststate.TierPolicies
		profiles []string
	}{
		{"profile only", nil, []string{"allow-all"}},
		{"nothing", nil, nil},
		{"allow 80, end of tier", []hoststate.TierPolicies{t1(hoststate.Deny, allow80)}, []string{"allow-all"}},
		{"deny w1 first", []hoststate.TierPolicies{t1(hoststate.Deny, denyW1, allow80)}, nil},
		{"log, pass but 9090, next tier", []hoststate.TierPolicies{t1(hoststate.Deny, logAll, pass, allow80), t2(icmpEcho)}, []string{"allow-all"}},
		{"named port or 80", []hoststate.TierPolicies{t1(hoststate.Deny, named)}, nil},
		{"compiled range, pass default", []hoststate.TierPolicies{t1(hoststate.Pass, rangeNet), t2(icmpEcho, allowAll)}, nil},
		{"not w1", []hoststate.TierPolicies{t1(hoststate.Deny, notW1)}, []string{"allow-all"}},
	}
	type probe struct {
		pkt vd.Packet
		try func() error
	}
	src, dst := netip.MustParseAddr("10.65.0.1"), netip.MustParseAddr("10.65.0.2")
	var probes []probe
	for _, port := range []uint16{80, 8080, 9090} {
		probes = append(probes, probe{vd.Packet{Src: src, Dst: dst, Protocol: tcp, SrcPort: 40000, DstPort: port},
			func() error { return dial(tp.w1, "", fmt.Sprintf("10.65.0.2:%d", port)) }})
	}
	probes = append(probes, probe{vd.Packet{Src: src, Dst: dst, Protocol: 1, ICMPType: 8},
		func() error { return ping(tp.w1, "10.65.0.2") }})

	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			tp.w2Policy(t, l.tiers, l.profiles...)
			rec.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), l.tiers, l.profiles...))
			for _, p := range probes {
				out, err := rec.Host.Workload("ns/w1", vd.Egress, p.pkt)
				if err != nil {
					t.Fatal(err)
				}
				in, err := rec.Host.Workload("ns/w2", vd.Ingress, p.pkt)
				if err != nil {
					t.Fatal(err)
				}
				model := out.Verdict == hoststate.Allow && in.Verdict == hoststate.Allow
				kernel := p.try() == nil
				if model != kernel {
					t.Errorf("%+v: the kernel allows it: %v, verdict says %v (egress %s %+v, ingress %s %+v)",
						p.pkt, kernel, model, out.Verdict, out.Steps, in.Verdict, in.Steps)
				}
			}
		})
	}
}
