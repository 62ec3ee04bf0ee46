package overlay

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/api"
)

// TestGuardKernel: tunnel packets from a host that is not known are
// dropped by the receiving host; from a known one they pass; the table
// holds what the guard says.
func TestGuardKernel(t *testing.T) {
	names, hs := twoHosts(t)
	ns := nodes()[:2]
	var ds [2]Desired
	for i := range hs {
		ds[i] = Compute(Input{Node: ns[i].Name, Nodes: ns, Blocks: blocks(), UplinkMTU: 1500,
			Pools: []*api.IPPool{pool("v4", "192.168.0.0/16", api.EncapAlways, "")}})
		if err := NewManager(hs[i], nil).Apply(ds[i]); err != nil {
			t.Fatal(err)
		}
	}
	h, err := netns.GetFromName(names[1])
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	guard := func(g Guard) {
		t.Helper()
		c, err := nftables.New(nftables.WithNetNSFd(int(h)))
		if err != nil {
			t.Fatal(err)
		}
		if err := ApplyGuard(c, g); err != nil {
			t.Fatal(err)
		}
	}
	ping := func() error {
		return exec.Command("ip", "netns", "exec", names[0], "ping", "-c", "1", "-W", "1", "-I", "192.168.0.1", "192.168.0.65").Run()
	}
	// h1's address is not among the known hosts: its VXLAN is dropped.
	guard(Guard{Port: DefaultPort, KnownHosts: []netip.Addr{netip.MustParseAddr("10.0.1.12")}, WorkloadPrefix: "cali"})
	if ping() == nil {
		t.Fatal("tunnel ping from an unknown host went through the guard")
	}
	table := run(t, names[1], "nft", "list", "table", "inet", GuardTable)
	for _, w := range []string{"udp dport 4789 ip saddr != @hosts4", `udp dport 4789 iifname "cali*"`, "drop", "10.0.1.12"} {
		if !strings.Contains(table, w) {
			t.Errorf("guard table lacks %q:\n%s", w, table)
		}
	}
	// With the real known hosts, it passes.
	guard(GuardOf(ds[1], "cali"))
	if err := ping(); err != nil {
		t.Fatalf("tunnel ping from a known host: %v", err)
	}
	// Port 0 removes the table.
	guard(Guard{})
	if out, err := exec.Command("ip", "netns", "exec", names[1], "nft", "list", "table", "inet", GuardTable).CombinedOutput(); err == nil {
		t.Fatalf("guard table left after removal:\n%s", out)
	}
}
