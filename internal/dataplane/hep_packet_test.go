package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

// TestHostEndpointPackets: policy on a host interface, against the real
// kernel. An outside namespace reaches the host (10.0.0.100) and, through
// it, workload w2 (10.65.0.2) over the host's eth0, which has a host
// endpoint with normal, applyOnForward, preDNAT or doNotTrack policy that
// denies everything; the failsafe port 22 stays open whatever it says.
func TestHostEndpointPackets(t *testing.T) {
	d := newKernelDP(t, "heph")
	extName, ext := newNetns(t, "ext")
	w2Name, w2 := newNetns(t, "hepw2")
	inNS(t, d.ns, "sh", "-c", "ip link set lo up && ip link add eth0 type veth peer name eth0 netns "+extName+
		" && ip link set eth0 up && ip addr add 10.0.0.100/24 dev eth0 && ip route add default via 10.0.0.200"+
		" && ip link add cali2 type veth peer name eth0 netns "+w2Name+" && ip link set cali2 up")
	inNS(t, extName, "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 10.0.0.200/24 dev eth0 && ip route add 10.65.0.0/16 via 10.0.0.100")
	inNS(t, w2Name, "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 10.65.0.2/32 dev eth0"+
		" && ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0")
	listen(t, d.h, "10.0.0.100:22")
	listen(t, d.h, "10.0.0.100:2222")
	listen(t, w2, "10.65.0.2:80")

	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, FailsafeInboundHostPorts: []hoststate.ProtoPort{{Protocol: tcp, Port: 22}}})
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	d.OnPolicyUpdate(inPolicy("t1", "deny-all", hoststate.Rule{Action: hoststate.Deny, ID: "r"}))
	d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), nil, "allow-all"))
	d.OnLocalBlockUpdate(pfx("10.65.0.0/26")[0])
	d.OnInSync()
	denyAll := []hoststate.TierPolicies{tierIn("t1", hoststate.Deny, pid("t1", "deny-all"))}

	type check struct {
		to    string
		allow bool
	}
	cases := []struct {
		name   string
		hep    *hoststate.HostEndpoint // nil: no host endpoint
		checks []check
	}{
		{"no host endpoint", nil, []check{{"10.0.0.100:2222", true}, {"10.65.0.2:80", true}}},
		{"normal policy: host closed but failsafe, forwarding untouched",
			&hoststate.HostEndpoint{Tiers: denyAll},
			[]check{{"10.0.0.100:2222", false}, {"10.0.0.100:22", true}, {"10.65.0.2:80", true}}},
		{"applyOnForward policy: forwarded traffic denied",
			&hoststate.HostEndpoint{ForwardTiers: denyAll, ProfileIDs: []string{"allow-all"}},
			[]check{{"10.65.0.2:80", false}, {"10.0.0.100:2222", true}}},
		{"preDNAT policy: denied before routing but failsafe",
			&hoststate.HostEndpoint{PreDNATTiers: denyAll, ProfileIDs: []string{"allow-all"}},
			[]check{{"10.65.0.2:80", false}, {"10.0.0.100:2222", false}, {"10.0.0.100:22", true}}},
		{"doNotTrack policy: denied untracked but failsafe",
			&hoststate.HostEndpoint{UntrackedTiers: denyAll, ProfileIDs: []string{"allow-all"}},
			[]check{{"10.65.0.2:80", false}, {"10.0.0.100:2222", false}, {"10.0.0.100:22", true}}},
		{"host endpoint gone again", nil, []check{{"10.0.0.100:2222", true}, {"10.65.0.2:80", true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.hep != nil {
				ep := *c.hep
				ep.ID, ep.InterfaceName = "eth0", "eth0"
				d.OnHostEndpointUpdate(ep)
			} else {
				d.OnHostEndpointRemove("eth0")
			}
			if err := d.Apply(context.Background()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for _, ch := range c.checks {
				err := dial(ext, "", ch.to)
				if ch.allow && err != nil {
					t.Errorf("outside → %s: want allowed, got %v", ch.to, err)
				}
				if !ch.allow && err == nil {
					t.Errorf("outside → %s: want dropped, got through", ch.to)
				}
			}
		})
	}
	// Without preDNAT or doNotTrack policy, the chains every forwarded
	// packet crosses before conntrack hold no rule.
	for _, c := range []string{chainRawPre, chainPrerouting} {
		out := inNS(t, d.ns, "nft", "list", "chain", "inet", "serval", c)
		if strings.Contains(out, "vmap") || strings.Contains(out, "dport") {
			t.Errorf("chain %s still has rules without host endpoint policy:\n%s", c, out)
		}
	}
}
