package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/servalnet/serval/internal/hoststate"
)

func baseState(d hoststate.Callbacks) {
	d.OnIPSetUpdate(setA)
	d.OnPolicyUpdate(inPolicy("default", "p1", hoststate.Rule{Action: hoststate.Allow, SrcIPSetIDs: []string{"sel-a"}, ID: "r0"}))
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"),
		[]hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}))
}

func TestIncrementalOps(t *testing.T) {
	p1in := policyChainName(pid("default", "p1"), true)
	cases := []struct {
		name   string
		change func(d *testDP)
		want   []string
	}{
		{"nothing", func(d *testDP) {}, nil},
		{"policy rule changed", func(d *testDP) {
			d.OnPolicyUpdate(inPolicy("default", "p1", hoststate.Rule{Action: hoststate.Deny, SrcIPSetIDs: []string{"sel-a"}, ID: "r0"}))
		}, []string{
			"flush chain " + p1in,
			"add rule " + p1in + " meta nfproto ipv4 ip saddr @s4-d9b4541847 drop",
			"add rule " + p1in + " meta nfproto ipv6 ip6 saddr @s6-d9b4541847 drop",
		}},
		{"same policy again", func(d *testDP) {
			d.OnPolicyUpdate(inPolicy("default", "p1", hoststate.Rule{Action: hoststate.Allow, SrcIPSetIDs: []string{"sel-a"}, ID: "r0"}))
		}, nil},
		{"set member added and removed", func(d *testDP) {
			d.OnIPSetDelta("sel-a", []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.65.0.7/32")}},
				[]hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("fd00::2/128")}})
		}, []string{
			"delete element s6-d9b4541847 { fd00::2 }",
			"add element s4-d9b4541847 { 10.65.0.7 }",
		}},
		{"second endpoint", func(d *testDP) {
			d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), nil))
		}, []string{
			"add chain " + fromWorkloadChainName("ns/w2"),
			"add chain " + toWorkloadChainName("ns/w2"),
			"add rule " + fromWorkloadChainName("ns/w2") + " meta nfproto ipv4 ip saddr != 10.65.0.2 drop",
			"add rule " + fromWorkloadChainName("ns/w2") + " meta nfproto ipv6 drop",
			"add rule " + fromWorkloadChainName("ns/w2") + " meta mark set meta mark & 0xfffcffff | 0x00000000",
			"add rule " + fromWorkloadChainName("ns/w2") + " drop",
			"add rule " + toWorkloadChainName("ns/w2") + " meta mark set meta mark & 0xfffcffff | 0x00000000",
			"add rule " + toWorkloadChainName("ns/w2") + " drop",
			`add element wl-from { "cali2" : jump ` + fromWorkloadChainName("ns/w2") + " }",
			`add element wl-to { "cali2" : jump ` + toWorkloadChainName("ns/w2") + " }",
		}},
		{"endpoint removed", func(d *testDP) {
			d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), nil))
			d.Apply(context.Background())
			d.OnWorkloadEndpointRemove("ns/w2")
		}, []string{
			`delete element wl-from { "cali2" : jump ` + fromWorkloadChainName("ns/w2") + " }",
			`delete element wl-to { "cali2" : jump ` + toWorkloadChainName("ns/w2") + " }",
			"flush chain " + fromWorkloadChainName("ns/w2"),
			"flush chain " + toWorkloadChainName("ns/w2"),
			"delete chain " + fromWorkloadChainName("ns/w2"),
			"delete chain " + toWorkloadChainName("ns/w2"),
		}},
		{"policy and its set removed", func(d *testDP) {
			d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil))
			d.OnPolicyRemove(pid("default", "p1"))
			d.OnIPSetRemove("sel-a")
		}, []string{
			"flush chain " + toWorkloadChainName("ns/w1"),
			"add rule " + toWorkloadChainName("ns/w1") + " meta mark set meta mark & 0xfffcffff | 0x00000000",
			"add rule " + toWorkloadChainName("ns/w1") + " drop",
			"flush chain " + p1in,
			"delete chain " + p1in, // p1 has no egress rules: no egress chain
			"delete set s4-d9b4541847",
			"delete set s6-d9b4541847",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDP(t)
			baseState(d)
			d.OnInSync()
			d.apply(t)
			n := len(d.nft.Transactions)
			c.change(d)
			d.apply(t)
			var got []string
			if len(d.nft.Transactions) > n {
				got = d.lastOps()
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if d.nft.Dump() != d.Dump() {
				t.Errorf("kernel differs from desired\n%s\n%s", d.nft.Dump(), d.Dump())
			}
		})
	}
}

func TestNoDeletesBeforeInSync(t *testing.T) {
	d := newTestDP(t)
	// What a previous run left: a policy chain and a set nobody wants now.
	prev := newTestDP(t)
	prev.Dataplane.nft = d.nft
	baseState(prev)
	prev.OnInSync()
	prev.apply(t)

	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil))
	d.apply(t)
	for _, o := range d.lastOps() {
		if strings.HasPrefix(o, "delete") {
			t.Errorf("deleted before in sync: %s", o)
		}
	}
	if !strings.Contains(d.nft.Dump(), "s4-d9b4541847") {
		t.Error("stale set removed before in sync")
	}
	d.OnInSync()
	d.apply(t)
	if d.nft.Dump() != d.Dump() {
		t.Errorf("after in sync, kernel differs from desired:\n%s\nwant\n%s", d.nft.Dump(), d.Dump())
	}
}

func TestResyncRepairs(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(f *FakeNFT)
	}{
		{"rule deleted", func(f *FakeNFT) { f.DeleteRule(chainForward, 3) }},
		{"set emptied", func(f *FakeNFT) { f.DeleteSetElements(ipSetName("sel-a", v4)) }},
		{"map emptied", func(f *FakeNFT) { f.DeleteSetElements(mapWlFrom) }},
		{"table deleted", func(f *FakeNFT) { f.DeleteTable() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDP(t)
			baseState(d)
			d.OnInSync()
			d.apply(t)
			want := d.nft.Dump()
			c.tamper(d.nft)
			d.apply(t) // without a resync, the dataplane trusts its view
			if d.nft.Dump() == want {
				t.Fatal("tampering not visible")
			}
			d.Resync()
			d.apply(t)
			if got := d.nft.Dump(); got != want {
				t.Errorf("not repaired:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestFailedApplyRetries(t *testing.T) {
	d := newTestDP(t)
	baseState(d)
	d.OnInSync()
	d.nft.FailNext = errors.New("EBUSY")
	if err := d.Apply(context.Background()); err == nil {
		t.Fatal("want error")
	}
	if len(d.nft.Transactions) != 0 {
		t.Fatal("failed transaction recorded")
	}
	d.apply(t)
	if d.nft.Dump() != d.Dump() {
		t.Error("retry did not program everything")
	}
}

func TestRoutes(t *testing.T) {
	d := newTestDP(t)
	d.routes.AddRoute(netlink.Route{Dst: prefixIPNet(netip.MustParsePrefix("10.65.9.9/32")), LinkIndex: 2, Protocol: RouteProtocol})                                  // stale
	d.routes.AddRoute(netlink.Route{Dst: prefixIPNet(netip.MustParsePrefix("192.0.2.0/24")), LinkIndex: 2, Protocol: 4})                                              // not ours
	d.routes.AddRoute(netlink.Route{Dst: prefixIPNet(netip.MustParsePrefix("10.65.0.2/32")), LinkIndex: 11, Protocol: RouteProtocol})                                 // CNI's, endpoint not known yet
	d.routes.AddRoute(netlink.Route{Dst: prefixIPNet(netip.MustParsePrefix("10.66.0.0/26")), LinkIndex: 2, Gw: net.ParseIP("172.17.8.102"), Protocol: RouteProtocol}) // learned by BGP: the speaker's
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32", "fd00::1/128"), nil))
	d.OnWorkloadEndpointUpdate(wep("ns/w3", "cali3", pfx("10.65.0.3/32"), nil)) // veth not there yet
	d.OnLocalBlockUpdate(netip.MustParsePrefix("10.65.0.0/26"))
	d.apply(t)
	got := d.routes.Dump()
	wantDump := strings.Join([]string{
		"10.65.0.1/32 dev cali1 scope link proto 80",
		"10.65.0.2/32 dev cali2 scope link proto 80",
		"10.65.9.9/32 dev eth0 scope link proto 80", // not removed before in sync
		"10.66.0.0/26 via 172.17.8.102 dev eth0 proto 80",
		"192.0.2.0/24 dev eth0 scope link proto 4",
		"blackhole 10.65.0.0/26 proto 80",
		"fd00::1/128 dev cali1 scope link proto 80",
	}, "\n")
	if got != wantDump {
		t.Errorf("routes before in sync:\n%s\nwant\n%s", got, wantDump)
	}
	d.OnInSync()
	d.routes.Links["cali3"] = 12
	d.apply(t)
	wantDump = strings.Join([]string{
		"10.65.0.1/32 dev cali1 scope link proto 80",
		"10.65.0.2/32 dev cali2 scope link proto 80", // CNI's route to a live workload veth stays
		"10.65.0.3/32 dev cali3 scope link proto 80",
		"10.66.0.0/26 via 172.17.8.102 dev eth0 proto 80", // BGP's route stays
		"192.0.2.0/24 dev eth0 scope link proto 4",
		"blackhole 10.65.0.0/26 proto 80",
		"fd00::1/128 dev cali1 scope link proto 80",
	}, "\n")
	if got := d.routes.Dump(); got != wantDump {
		t.Errorf("routes after in sync:\n%s\nwant\n%s", got, wantDump)
	}
	n := len(d.routes.Calls)
	d.apply(t)
	if len(d.routes.Calls) != n {
		t.Errorf("steady state changed routes: %v", d.routes.Calls[n:])
	}
	d.OnLocalBlockRemove(netip.MustParsePrefix("10.65.0.0/26"))
	d.OnWorkloadEndpointRemove("ns/w3")
	delete(d.routes.Links, "cali3") // the veth went with the workload
	d.apply(t)
	got = strings.Join(slices.Sorted(slices.Values(d.routes.Calls[n:])), "\n")
	if got != "delete 10.65.0.3/32 dev  scope link proto 80\ndelete blackhole 10.65.0.0/26 proto 80" {
		t.Errorf("removal calls: %q", got)
	}
}

func TestSysctls(t *testing.T) {
	d := newTestDP(t)
	d.sysctl.Missing["cali3"] = true
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil))
	d.OnWorkloadEndpointUpdate(wep("ns/w3", "cali3", pfx("10.65.0.3/32"), nil))
	d.apply(t)
	want := []string{
		"net/ipv4/ip_forward=1", "net/ipv6/conf/all/forwarding=1",
		"net/ipv4/conf/cali1/proxy_arp=1", "net/ipv4/neigh/cali1/proxy_delay=0", "net/ipv4/conf/cali1/forwarding=1",
		"net/ipv6/conf/cali1/forwarding=1", "net/ipv6/conf/cali1/accept_ra=0",
	}
	if !slices.Equal(d.sysctl.Writes, want) {
		t.Errorf("writes %q\nwant %q", d.sysctl.Writes, want)
	}
	delete(d.sysctl.Missing, "cali3")
	d.apply(t)
	if got := d.sysctl.Writes[len(want):]; len(got) != 5 || got[0] != "net/ipv4/conf/cali3/proxy_arp=1" {
		t.Errorf("cali3 not configured once it appeared: %q", got)
	}
}

func TestRunMergesBursts(t *testing.T) {
	d := newTestDP(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	baseState(d)
	for i := 0; i < 50; i++ {
		d.OnIPSetDelta("sel-a", []hoststate.IPSetMember{{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 66, 0, byte(i)}), 32)}}, nil)
	}
	d.OnInSync()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Poll through the fake's own state: the run goroutine owns d.
		if strings.Contains(d.nft.Dump(), "10.66.0.49") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not apply the updates")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if n := len(d.nft.Transactions); n > 10 {
		t.Errorf("%d transactions for one burst of 53 updates", n)
	}
}

// A plan with more set elements than fillBatch fills the sets it creates
// in transactions of their own, bounded, before the one transaction that
// adds the rules using them; elements added to a set already in use stay
// in that one transaction, however many.
func TestFillNewSetsInBatches(t *testing.T) {
	// Elements travel in ops of maxElemsPerOp; a batch is whole ops.
	const size = 2*maxElemsPerOp + maxElemsPerOp/2
	members := func(second byte) []hoststate.IPSetMember {
		var ms []hoststate.IPSetMember
		for i := range size {
			ms = append(ms, hoststate.IPSetMember{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, second, byte(i / 100), byte(2 * (i % 100))}), 32)})
		}
		return ms
	}
	d := newTestDP(t)
	d.fillBatch = maxElemsPerOp
	d.OnIPSetUpdate(hoststate.IPSet{ID: "sel-a", Type: hoststate.IPSetNets, Members: members(80)})
	d.OnPolicyUpdate(inPolicy("default", "p1", hoststate.Rule{Action: hoststate.Allow, SrcIPSetIDs: []string{"sel-a"}, ID: "r0"}))
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"),
		[]hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}))
	d.OnInSync()
	d.apply(t)

	txs := d.nft.Transactions
	if len(txs) < 3 {
		t.Fatalf("cold start in %d transactions, want the set filled in batches of %d before the rules", len(txs), d.fillBatch)
	}
	filled := 0
	for i, tx := range txs[:len(txs)-1] {
		elems := 0
		for _, o := range tx {
			switch o.Kind {
			case OpAddTable, OpAddSet, OpAddElems:
				elems += len(o.Elems)
			default:
				t.Errorf("fill transaction %d holds %s", i, o)
			}
		}
		if elems > d.fillBatch {
			t.Errorf("fill transaction %d: %d elements, want at most %d", i, elems, d.fillBatch)
		}
		filled += elems
	}
	if filled != size {
		t.Errorf("fill transactions added %d elements, want the set's %d", filled, size)
	}
	rules := 0
	for _, o := range txs[len(txs)-1] {
		if o.Kind == OpAddRule {
			rules++
		}
	}
	if rules == 0 {
		t.Error("the last transaction adds no rule")
	}
	// The dataplane's view of the kernel matches the kernel: nothing to do.
	n := len(d.nft.Transactions)
	d.Resync()
	d.apply(t)
	if got := len(d.nft.Transactions) - n; got != 0 {
		t.Errorf("a resync after the fill committed %d transactions: %v", got, d.lastOps())
	}

	// The set is in use now: a larger change to it is one transaction.
	n = len(d.nft.Transactions)
	d.OnIPSetUpdate(hoststate.IPSet{ID: "sel-a", Type: hoststate.IPSetNets, Members: members(81)})
	d.apply(t)
	if got := len(d.nft.Transactions) - n; got != 1 {
		t.Errorf("replacing the %d elements of a set in use took %d transactions, want 1", size, got)
	}
}

// TestResyncRepairsContent: a rule whose expressions were changed behind
// the dataplane's back, its comment (hash) kept, is rewritten by the next
// resync; a resync of an untouched table writes nothing.
func TestResyncRepairsContent(t *testing.T) {
	d := newTestDP(t)
	baseState(d)
	d.OnInSync()
	d.apply(t)
	want := d.nft.Dump()
	n := len(d.nft.Transactions)
	d.Resync()
	d.apply(t)
	if len(d.nft.Transactions) != n {
		t.Fatalf("resync of an untouched table wrote %v", d.lastOps())
	}
	d.nft.ReplaceRuleKeepHash(chainForward, 0, vAccept)
	if d.nft.Dump() == want {
		t.Fatal("tampering not visible")
	}
	d.Resync()
	d.apply(t)
	if got := d.nft.Dump(); got != want {
		t.Errorf("not repaired:\n%s\nwant\n%s", got, want)
	}
}
