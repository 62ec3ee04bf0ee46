package dataplane

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/roottest"
)

var nsSeq atomic.Int32

func needRoot(t testing.TB) {
	t.Helper()
	roottest.NeedRoot(t, "network namespaces, nftables")
	roottest.NeedProgram(t, "nft", "nftables") // reads the state back
}

// newNetns creates a named network namespace for the test and removes it
// at cleanup.
func newNetns(t testing.TB, tag string) (string, netns.NsHandle) {
	t.Helper()
	name := fmt.Sprintf("svt-dp-%d-%d-%s", os.Getpid()%100000, nsSeq.Add(1), tag)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	return name, h
}

func inNS(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

func kernelNFT(h netns.NsHandle) *KernelNFT {
	return NewKernelNFT(func() (Conn, error) { return NewConn(nftables.WithNetNSFd(int(h))) }).InNetNS(int(h))
}

type kernelDP struct {
	*Dataplane
	ns  string
	h   netns.NsHandle
	nlh *netlink.Handle
}

func newKernelDP(t testing.TB, tag string) *kernelDP {
	t.Helper()
	needRoot(t)
	ns, h := newNetns(t, tag)
	nlh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nlh.Close)
	d, err := New(Options{NFT: kernelNFT(h), Routes: nlh, Sysctl: NetnsSysctl{NS: h}, Ifaces: nlh})
	if err != nil {
		t.Fatal(err)
	}
	return &kernelDP{Dataplane: d, ns: ns, h: h, nlh: nlh}
}

// richState programs a bit of everything the renderer produces.
func richState(d hoststate.Callbacks) {
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"},
		FailsafeInboundHostPorts:  []hoststate.ProtoPort{{Protocol: tcp, Port: 22}},
		FailsafeOutboundHostPorts: []hoststate.ProtoPort{{Protocol: udp, Port: 53}}})
	d.OnIPSetUpdate(setA)
	d.OnIPSetUpdate(setB)
	d.OnIPSetUpdate(setNP)
	d.OnIPSetUpdate(hoststate.IPSet{ID: "netset", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{
		{Prefix: pfx("10.0.0.0/8")[0]}, {Prefix: pfx("0.0.0.0/0")[0]}, {Prefix: pfx("2001:db8::/32")[0]}}})
	d.OnPolicyUpdate(inPolicy("default", "p1",
		hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{"sel-a"}, NotSrcIPSetIDs: []string{"sel-b"},
			DstPorts: []hoststate.PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8100}}, DstNamedPortIPSetIDs: []string{"np-http"}, ID: "r0"},
		hoststate.Rule{Action: hoststate.Deny, Protocol: u8(1), NotICMPType: u8(8), NotICMPCode: u8(0), ID: "r1"},
		hoststate.Rule{Action: hoststate.Log, SrcNets: pfx("10.0.0.0/8", "192.168.0.0/16", "fd00::/8"), ID: "r2"},
		hoststate.Rule{Action: hoststate.Pass, NotDstNets: pfx("10.65.0.0/16"), SrcIPSetIDs: []string{"netset"}, ID: "r3"},
		hoststate.Rule{Action: hoststate.Allow, Protocol: u8(udp), NotSrcPorts: []hoststate.PortRange{{First: 1, Last: 1023}}, ID: "r4"},
	))
	// p2 and p3 compile into one run: exact elements, ranges, overlapping
	// nets and ports, both families.
	d.OnPolicyUpdate(inPolicy("default", "p2",
		hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{"netset"}, DstPorts: []hoststate.PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8100}}, ID: "r0"},
		hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{"sel-a"}, DstPorts: []hoststate.PortRange{{First: 443, Last: 443}}, ID: "r1"}))
	d.OnPolicyUpdate(inPolicy("default", "p3",
		hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcNets: pfx("192.168.0.0/16", "fd00::/8"), DstPorts: []hoststate.PortRange{{First: 8050, Last: 9000}}, ID: "r0"}))
	d.OnProfileUpdate(hoststate.Profile{Name: "kns.default", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32", "fd00::1/128"),
		[]hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"), pid("default", "p2"), pid("default", "p3"))}, "kns.default"))
	d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), nil, "kns.default"))
	d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "eth0", InterfaceName: "eth0", ProfileIDs: []string{"kns.default"},
		UntrackedTiers: []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}})
	d.OnIPPoolUpdate("p", hoststate.IPPool{CIDR: pfx("10.65.0.0/16")[0], NATOutgoing: true})
	d.OnInSync()
}

func TestKernelProgramReadBackAndRepair(t *testing.T) {
	d := newKernelDP(t, "k")
	// Somebody else's table must survive everything we do.
	inNS(t, d.ns, "nft", "add table inet other; add chain inet other c { type filter hook input priority 10; }; add rule inet other c tcp dport 9 drop")
	other := inNS(t, d.ns, "nft", "list table inet other")

	richState(d)
	ctx := context.Background()
	if err := d.Apply(ctx); err != nil {
		t.Fatalf("cold Apply: %v", err)
	}
	listed := inNS(t, d.ns, "nft", "list table inet serval")
	golden(t, "kernel_rich", listed)

	// The read-back equals what was written: a resync finds nothing to do.
	d.Resync()
	if err := d.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Ops != 0 {
		t.Errorf("resync after a clean apply wrote %d ops", d.Stats().Ops)
	}

	// Tamper: delete a rule, flush a set, delete a map element, add a
	// chain of our own name nobody asked for.
	pol := policyChainName(pid("default", "p1"), true)
	handles := inNS(t, d.ns, "nft", "-a", "list chain inet serval "+pol)
	var handle string
	for _, l := range strings.Split(handles, "\n") {
		if i := strings.Index(l, "# handle "); i >= 0 && strings.Contains(l, "drop") {
			handle = strings.TrimSpace(l[i+len("# handle "):])
			break
		}
	}
	if handle == "" {
		t.Fatalf("no rule handle found in:\n%s", handles)
	}
	inNS(t, d.ns, "nft", "delete rule inet serval "+pol+" handle "+handle)
	inNS(t, d.ns, "nft", "flush set inet serval "+ipSetName("sel-a", v4))
	inNS(t, d.ns, "nft", `delete element inet serval wl-to { "cali2" }`)
	inNS(t, d.ns, "nft", "add chain inet serval stray")
	if inNS(t, d.ns, "nft", "list table inet serval") == listed {
		t.Fatal("tampering changed nothing")
	}
	d.Resync()
	if err := d.Apply(ctx); err != nil {
		t.Fatalf("repairing Apply: %v", err)
	}
	if got := inNS(t, d.ns, "nft", "list table inet serval"); got != listed {
		t.Errorf("resync did not repair the table\n--- got ---\n%s\n--- want ---\n%s", got, listed)
	}
	if got := inNS(t, d.ns, "nft", "list table inet other"); got != other {
		t.Errorf("foreign table changed\n%s\nwas\n%s", got, other)
	}

	// The whole table deleted behind our back comes back.
	inNS(t, d.ns, "nft", "delete table inet serval")
	d.Resync()
	if err := d.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inNS(t, d.ns, "nft", "list table inet serval"); got != listed {
		t.Errorf("table not restored\n%s", got)
	}

	// A restarted dataplane with the same state changes nothing.
	d2, err := New(Options{NFT: kernelNFT(d.h)})
	if err != nil {
		t.Fatal(err)
	}
	richState(d2)
	if err := d2.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if d2.Stats().Ops != 0 {
		t.Errorf("restart wrote %d ops to an up-to-date table", d2.Stats().Ops)
	}
}
