package dataplane

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

// TestKernelDriftRepairsContent: someone replaces a rule's expressions in
// the kernel and keeps its comment (the hash Serval wrote); the resync
// sees the content differ and puts the rule back. A resync of an
// untouched table writes nothing, whatever the rules hold (NAT, limits,
// reject, log, anonymous sets).
func TestKernelDriftRepairsContent(t *testing.T) {
	d := newKernelDP(t, "drift")
	richState(d)
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, DenyAction: "Reject",
		LogRate:                   hoststate.RateLimit{Rate: 3, Unit: "minute", Burst: 7},
		NATOutgoingAddress:        mustAddr("192.0.2.1"),
		FailsafeInboundHostPorts:  []hoststate.ProtoPort{{Protocol: tcp, Port: 22}},
		FailsafeOutboundHostPorts: []hoststate.ProtoPort{{Protocol: udp, Port: 53}}})
	ep := wep("ns/w3", "cali3", pfx("10.65.0.3/32", "fd00::3/128"), nil, "kns.default")
	ep.IPNATs = []hoststate.IPNAT{{Internal: mustAddr("10.65.0.3"), External: mustAddr("203.0.113.3")}, {Internal: mustAddr("fd00::3"), External: mustAddr("2001:db8::3")}}
	d.OnWorkloadEndpointUpdate(ep)
	ctx := context.Background()
	if err := d.Apply(ctx); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	listed := inNS(t, d.ns, "nft", "list table inet serval")
	d.Resync()
	if err := d.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Ops != 0 {
		t.Fatalf("resync of an untouched table wrote %d ops", d.Stats().Ops)
	}
	for _, c := range []struct {
		chain, match, with string
	}{
		{policyChainName(pid("default", "p1"), true), "reject", "meta l4proto tcp accept"},
		{chainNATPre, "dnat", "ip daddr 203.0.113.3 dnat ip to 10.65.0.99"},
		{policyChainName(pid("default", "p1"), true), "log", `log prefix "other"`},
	} {
		handles := inNS(t, d.ns, "nft", "-a", "list chain inet serval "+c.chain)
		re := regexp.MustCompile(`comment "([^"]*)" # handle (\d+)`)
		var comment, handle string
		for _, l := range strings.Split(handles, "\n") {
			if m := re.FindStringSubmatch(l); m != nil && strings.Contains(l, c.match) {
				comment, handle = m[1], m[2]
				break
			}
		}
		if handle == "" {
			t.Fatalf("no %q rule in:\n%s", c.match, handles)
		}
		inNS(t, d.ns, "nft", "replace rule inet serval "+c.chain+" handle "+handle+" "+c.with+` comment "`+comment+`"`)
		if inNS(t, d.ns, "nft", "list table inet serval") == listed {
			t.Fatalf("replacing the %s rule of %s changed nothing", c.match, c.chain)
		}
		d.Resync()
		if err := d.Apply(ctx); err != nil {
			t.Fatalf("repairing Apply: %v", err)
		}
		if got := inNS(t, d.ns, "nft", "list table inet serval"); got != listed {
			t.Errorf("resync did not repair the %s rule of %s:\n%s", c.match, c.chain, got)
		}
	}
}

// TestKernelDriftRepairsMapVerdict: a verdict map element re-pointed to
// another chain, with the comment Serval wrote kept, is seen and put back:
// the read-back decodes the verdict, not the comment.
func TestKernelDriftRepairsMapVerdict(t *testing.T) {
	d := newKernelDP(t, "vmap")
	richState(d)
	ctx := context.Background()
	if err := d.Apply(ctx); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	listed := inNS(t, d.ns, "nft", "list table inet serval")
	w2 := toWorkloadChainName("ns/w2")
	w1 := toWorkloadChainName("ns/w1")
	inNS(t, d.ns, "nft", `delete element inet serval wl-to { "cali2" }`)
	inNS(t, d.ns, "nft", `add element inet serval wl-to { "cali2" comment "`+w2+`" : jump `+w1+` }`)
	if got := inNS(t, d.ns, "nft", "list map inet serval wl-to"); !strings.Contains(got, `"cali2" comment "`+w2+`" : jump `+w1) {
		t.Fatalf("tampering not as meant:\n%s", got)
	}
	d.Resync()
	if err := d.Apply(ctx); err != nil {
		t.Fatalf("repairing Apply: %v", err)
	}
	if got := inNS(t, d.ns, "nft", "list table inet serval"); got != listed {
		t.Errorf("resync did not repair the map element:\n%s", inNS(t, d.ns, "nft", "list map inet serval wl-to"))
	}
}
