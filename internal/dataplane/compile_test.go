package dataplane

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

// TestDisjointCoversSameSpace checks disjoint against brute force on a
// small space: the output boxes never overlap and cover exactly the points
// the input boxes cover.
func TestDisjointCoversSameSpace(t *testing.T) {
	base := netip.MustParseAddr("10.0.0.0")
	addr := func(i int) netip.Addr {
		a := base
		for ; i > 0; i-- {
			a = a.Next()
		}
		return a
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for iter := 0; iter < 300; iter++ {
		var in []box
		for n := 1 + rng.IntN(6); n > 0; n-- {
			a0, a1 := rng.IntN(16), rng.IntN(16)
			p0, p1 := rng.IntN(20), rng.IntN(20)
			if rng.IntN(3) == 0 {
				p1 = p0 // many rules share single ports
			}
			in = append(in, box{from: addr(min(a0, a1)), to: addr(max(a0, a1)), p0: uint16(min(p0, p1)), p1: uint16(max(p0, p1))})
		}
		out := disjoint(in)
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				a := elem{from: pack(out[i].from), to: pack(out[i].to), Port: out[i].p0, PortTo: out[i].p1}
				b := elem{from: pack(out[j].from), to: pack(out[j].to), Port: out[j].p0, PortTo: out[j].p1}
				if boxesOverlap(a, b) {
					t.Fatalf("input %v: output boxes %v and %v overlap", in, out[i], out[j])
				}
			}
		}
		covered := func(bs []box, a netip.Addr, p uint16) bool {
			return slices.ContainsFunc(bs, func(b box) bool {
				return b.from.Compare(a) <= 0 && a.Compare(b.to) <= 0 && b.p0 <= p && p <= b.p1
			})
		}
		for ai := 0; ai < 17; ai++ {
			for p := uint16(0); p < 21; p++ {
				if covered(in, addr(ai), p) != covered(out, addr(ai), p) {
					t.Fatalf("input %v output %v: point %v/%d covered differently", in, out, addr(ai), p)
				}
			}
		}
	}
}

func TestRuleCompiles(t *testing.T) {
	tcpR := func(f func(*hoststate.Rule)) hoststate.Rule {
		r := hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), DstPorts: []hoststate.PortRange{{First: 80, Last: 80}}}
		f(&r)
		return r
	}
	cases := []struct {
		name    string
		r       hoststate.Rule
		inbound bool
		want    bool
	}{
		{"tcp port", tcpR(func(*hoststate.Rule) {}), true, true},
		{"from a set", tcpR(func(r *hoststate.Rule) { r.SrcIPSetIDs = []string{"a"} }), true, true},
		{"from nets", tcpR(func(r *hoststate.Rule) { r.SrcNets = pfx("10.0.0.0/8") }), true, true},
		{"egress to a set", tcpR(func(r *hoststate.Rule) { r.DstIPSetIDs = []string{"a"} }), false, true},
		{"ingress to a set (not the peer)", tcpR(func(r *hoststate.Rule) { r.DstIPSetIDs = []string{"a"} }), true, false},
		{"two sets (intersection)", tcpR(func(r *hoststate.Rule) { r.SrcIPSetIDs = []string{"a", "b"} }), true, false},
		{"set and nets", tcpR(func(r *hoststate.Rule) { r.SrcIPSetIDs = []string{"a"}; r.SrcNets = pfx("10.0.0.0/8") }), true, false},
		{"Log", tcpR(func(r *hoststate.Rule) { r.Action = hoststate.Log }), true, false},
		{"Deny", tcpR(func(r *hoststate.Rule) { r.Action = hoststate.Deny }), true, true},
		{"Pass", tcpR(func(r *hoststate.Rule) { r.Action = hoststate.Pass }), true, true},
		{"notNets", tcpR(func(r *hoststate.Rule) { r.NotSrcNets = pfx("10.0.0.0/8") }), true, false},
		{"notPorts", tcpR(func(r *hoststate.Rule) { r.NotDstPorts = []hoststate.PortRange{{First: 1, Last: 2}} }), true, false},
		{"src ports", tcpR(func(r *hoststate.Rule) { r.SrcPorts = []hoststate.PortRange{{First: 1, Last: 2}} }), true, false},
		{"named port", tcpR(func(r *hoststate.Rule) { r.DstNamedPortIPSetIDs = []string{"np"} }), true, false},
		{"icmp", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(1)}, true, false},
		{"any protocol, no ports", hoststate.Rule{Action: hoststate.Allow}, true, false},
		{"ports, no protocol", hoststate.Rule{Action: hoststate.Allow, DstPorts: []hoststate.PortRange{{First: 53, Last: 53}}}, true, true},
		{"udp without ports", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(udp)}, true, true},
		{"notProtocol", tcpR(func(r *hoststate.Rule) { r.NotProtocol = u8(udp) }), true, false},
	}
	for _, c := range cases {
		if got := ruleCompiles(c.r, c.inbound); got != c.want {
			t.Errorf("%s: ruleCompiles = %v, want %v", c.name, got, c.want)
		}
	}
	if s := shapeOf([]hoststate.Rule{tcpR(func(*hoststate.Rule) {}), tcpR(func(r *hoststate.Rule) { r.Action = hoststate.Deny })}, true); s.Compiles {
		t.Errorf("a policy mixing Allow and Deny rules compiled: %+v", s)
	}
}

// TestRunIncremental: runs are shared by endpoints with the same policies,
// an IP set change only changes run elements, and a policy that stops
// compiling turns back into a jump.
func TestRunIncremental(t *testing.T) {
	d := newTestDP(t)
	d.OnIPSetUpdate(hoststate.IPSet{ID: "a", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{{Prefix: pfx("10.1.0.1/32")[0]}}})
	r := hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{"a"}, DstPorts: []hoststate.PortRange{{First: 80, Last: 80}}, ID: "r0"}
	d.OnPolicyUpdate(inPolicy("default", "p1", r))
	d.OnPolicyUpdate(inPolicy("default", "p2", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcNets: pfx("10.2.0.0/16"), DstPorts: []hoststate.PortRange{{First: 443, Last: 443}}, ID: "r0"}))
	tiers := []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"), pid("default", "p2"))}
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), tiers))
	d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), tiers))
	d.OnInSync()
	d.apply(t)
	dump := d.Dump()
	if n := strings.Count(dump, "\tset e4-"); n != 1 {
		t.Fatalf("two endpoints with the same policies: %d exact v4 run sets, want 1 shared\n%s", n, dump)
	}
	if !strings.Contains(dump, "10.1.0.1 . tcp . 80") || !strings.Contains(dump, "10.2.0.0/16 . tcp . 443") {
		t.Fatalf("run elements missing:\n%s", dump)
	}

	d.OnIPSetDelta("a", []hoststate.IPSetMember{{Prefix: pfx("10.1.0.2/32")[0]}}, nil)
	d.apply(t)
	ops := d.lastOps()
	if !slices.ContainsFunc(ops, func(o string) bool {
		return strings.HasPrefix(o, "add element e4-") && strings.Contains(o, "10.1.0.2 . tcp . 80")
	}) ||
		slices.ContainsFunc(ops, func(o string) bool { return strings.Contains(o, "chain") }) {
		t.Errorf("IP set delta: ops %q, want run and set elements only", ops)
	}

	// p1 gains a Log rule: it no longer compiles, the endpoints jump to it.
	d.OnPolicyUpdate(inPolicy("default", "p1", hoststate.Rule{Action: hoststate.Log, ID: "l"}, r))
	d.apply(t)
	dump = d.Dump()
	if !strings.Contains(dump, "jump "+policyChainName(pid("default", "p1"), true)) {
		t.Errorf("p1 with a Log rule is not a jump:\n%s", dump)
	}
	if !strings.Contains(dump, "10.2.0.0/16 . tcp . 443") || strings.Contains(dump, "10.1.0.1 . tcp . 80") {
		t.Errorf("runs after p1 stopped compiling:\n%s", dump)
	}
}

// TestRunIncrementalMatchesScratch applies random policy and IP set changes
// one Apply at a time and checks that the table equals the one a fresh
// dataplane renders from the final state: the reference counts of
// compiled runs (terms that follow IP sets, elements of their own) must
// never lose or keep an element, whether a set changes whole or by delta,
// and as it gains and loses ranges.
func TestRunIncrementalMatchesScratch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	members := func() []hoststate.IPSetMember {
		var ms []hoststate.IPSetMember
		for i := rng.IntN(4); i >= 0; i-- {
			// Up to 10.1.0.9: past the /29 below, so that a set holding
			// the range also gives single-address elements of its own,
			// which other sets' terms may give too.
			ms = append(ms, hoststate.IPSetMember{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(rng.IntN(10))}), 32)})
		}
		if rng.IntN(4) == 0 {
			ms = append(ms, hoststate.IPSetMember{Prefix: pfx("10.1.0.0/29")[0]})
		}
		return ms
	}
	policy := func(i int) hoststate.Policy {
		port := uint16(80 + rng.IntN(3))
		r := hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{fmt.Sprintf("set-%d", rng.IntN(3))},
			DstPorts: []hoststate.PortRange{{First: port, Last: port + uint16(rng.IntN(2))}}, ID: "r0"}
		if rng.IntN(5) == 0 {
			r.Action = hoststate.Log // does not compile: the run splits
		}
		return inPolicy("default", fmt.Sprintf("p%d", i), r)
	}
	type state struct {
		sets map[string][]hoststate.IPSetMember
		pols map[int]hoststate.Policy
	}
	st := state{sets: map[string][]hoststate.IPSetMember{}, pols: map[int]hoststate.Policy{}}
	feed := func(d *testDP, s state) {
		for id, ms := range s.sets {
			d.OnIPSetUpdate(hoststate.IPSet{ID: id, Type: hoststate.IPSetNets, Members: ms})
		}
		var ids []hoststate.PolicyID
		for i := 0; i < 6; i++ {
			d.OnPolicyUpdate(s.pols[i])
			ids = append(ids, pid("default", fmt.Sprintf("p%d", i)))
		}
		d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), []hoststate.TierPolicies{tierIn("default", hoststate.Deny, ids...)}))
		d.OnInSync()
	}
	for i := 0; i < 3; i++ {
		st.sets[fmt.Sprintf("set-%d", i)] = members()
	}
	for i := 0; i < 6; i++ {
		st.pols[i] = policy(i)
	}
	d := newTestDP(t)
	feed(d, st)
	d.apply(t)
	for step := 0; step < 200; step++ {
		if rng.IntN(2) == 0 {
			i := rng.IntN(6)
			st.pols[i] = policy(i)
			d.OnPolicyUpdate(st.pols[i])
		} else {
			id := fmt.Sprintf("set-%d", rng.IntN(3))
			was := st.sets[id]
			st.sets[id] = members()
			if rng.IntN(2) == 0 {
				d.OnIPSetUpdate(hoststate.IPSet{ID: id, Type: hoststate.IPSetNets, Members: st.sets[id]})
			} else {
				// As the calculation graph sends most changes: a delta.
				var added, removed []hoststate.IPSetMember
				for _, m := range st.sets[id] {
					if !slices.Contains(was, m) && !slices.Contains(added, m) {
						added = append(added, m)
					}
				}
				for _, m := range was {
					if !slices.Contains(st.sets[id], m) && !slices.Contains(removed, m) {
						removed = append(removed, m)
					}
				}
				d.OnIPSetDelta(id, added, removed)
			}
		}
		d.apply(t)
		// The snapshot of the kernel, which shares elements with the
		// desired sets where they are equal, must still say what the
		// kernel holds.
		kernel, err := d.nft.Read()
		if err != nil {
			t.Fatal(err)
		}
		for name, ks := range kernel.Sets {
			if hs := d.have.Sets[name]; hs == nil || !maps.Equal(hs.Elems, ks.Elems) {
				t.Fatalf("step %d: snapshot of set %s differs from the kernel's", step, name)
			}
		}
		fresh := newTestDP(t)
		feed(fresh, st)
		fresh.apply(t)
		if got, want := d.Dump(), fresh.Dump(); got != want {
			t.Fatalf("step %d: incremental table differs from a fresh render\n--- incremental ---\n%s\n--- fresh ---\n%s", step, got, want)
		}
	}
}

// TestIPSetOnlyWhileTested: an IP set that only compiled runs use is not
// in the kernel (its members are in the runs' sets); it comes, before
// the rule, with the first chain that tests it, and goes with the last.
func TestIPSetOnlyWhileTested(t *testing.T) {
	d := newTestDP(t)
	d.OnIPSetUpdate(hoststate.IPSet{ID: "a", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{{Prefix: pfx("10.1.0.1/32")[0]}}})
	compiled := hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{"a"}, DstPorts: []hoststate.PortRange{{First: 80, Last: 80}}, ID: "r0"}
	d.OnPolicyUpdate(inPolicy("default", "p1", compiled))
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}))
	d.OnInSync()
	d.apply(t)
	name := ipSetName("a", v4)
	if dump := d.Dump(); strings.Contains(dump, name) || !strings.Contains(dump, "10.1.0.1 . tcp . 80") {
		t.Fatalf("set a, used only by a compiled run: want it out of the kernel and its member in the run\n%s", dump)
	}

	// p2 has a Log rule: it does not compile, its chain tests the set.
	d.OnPolicyUpdate(inPolicy("default", "p2", hoststate.Rule{Action: hoststate.Log, SrcIPSetIDs: []string{"a"}, ID: "l"}))
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"), pid("default", "p2"))}))
	d.apply(t)
	ops := d.lastOps()
	addSet := slices.Index(ops, "add set "+name)
	addElems := slices.IndexFunc(ops, func(o string) bool {
		return strings.HasPrefix(o, "add element "+name) && strings.Contains(o, "10.1.0.1")
	})
	addRule := slices.IndexFunc(ops, func(o string) bool { return strings.HasPrefix(o, "add rule") && strings.Contains(o, "@"+name) })
	if addSet < 0 || addElems < 0 || addRule < 0 || addSet > addRule || addElems > addRule {
		t.Fatalf("a chain starts testing set a: want the set and its member added before the rule, ops:\n%s", strings.Join(ops, "\n"))
	}

	d.OnIPSetDelta("a", []hoststate.IPSetMember{{Prefix: pfx("10.1.0.2/32")[0]}}, nil)
	d.apply(t)
	if ops := d.lastOps(); !slices.ContainsFunc(ops, func(o string) bool {
		return strings.HasPrefix(o, "add element "+name) && strings.Contains(o, "10.1.0.2")
	}) {
		t.Errorf("a member added while the set is tested: ops %q, want it added to %s", ops, name)
	}

	d.OnPolicyRemove(pid("default", "p2"))
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}))
	d.apply(t)
	if dump := d.Dump(); strings.Contains(dump, name) {
		t.Errorf("no chain tests set a any more: want it out of the kernel\n%s", dump)
	}
}
