package dataplane

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/hoststate"
)

var update = flag.Bool("update", false, "rewrite golden files")

func u8(v uint8) *uint8 { return &v }

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func pid(tier, name string) hoststate.PolicyID {
	return hoststate.PolicyID{Tier: tier, Kind: "GlobalNetworkPolicy", Name: name}
}

func inPolicy(tier, name string, rules ...hoststate.Rule) hoststate.Policy {
	return hoststate.Policy{ID: pid(tier, name), InboundRules: rules}
}

func tierIn(name string, def hoststate.Action, pols ...hoststate.PolicyID) hoststate.TierPolicies {
	return hoststate.TierPolicies{Name: name, DefaultAction: def, IngressPolicies: pols}
}

func wep(id, iface string, nets []netip.Prefix, tiers []hoststate.TierPolicies, profiles ...string) hoststate.WorkloadEndpoint {
	ep := hoststate.WorkloadEndpoint{ID: hoststate.EndpointID(id), InterfaceName: iface, Tiers: tiers, ProfileIDs: profiles}
	for _, n := range nets {
		if n.Addr().Is4() {
			ep.IPv4Nets = append(ep.IPv4Nets, n)
		} else {
			ep.IPv6Nets = append(ep.IPv6Nets, n)
		}
	}
	return ep
}

type testDP struct {
	*Dataplane
	nft    *FakeNFT
	routes *FakeRoutes
	sysctl *FakeSysctl
}

func newTestDP(t testing.TB) *testDP {
	t.Helper()
	nft := NewFakeNFT()
	rt := NewFakeRoutes(map[string]int{"eth0": 2, "cali1": 10, "cali2": 11})
	sc := NewFakeSysctl()
	d, err := New(Options{NFT: nft, Routes: rt, Sysctl: sc})
	if err != nil {
		t.Fatal(err)
	}
	return &testDP{Dataplane: d, nft: nft, routes: rt, sysctl: sc}
}

func (d *testDP) apply(t testing.TB) {
	t.Helper()
	if err := d.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// lastOps returns the ops of the last transaction as strings.
func (d *testDP) lastOps() []string {
	if len(d.nft.Transactions) == 0 {
		return nil
	}
	var out []string
	for _, o := range d.nft.Transactions[len(d.nft.Transactions)-1] {
		out = append(out, o.String())
	}
	return out
}

var baseChainNames = map[string]bool{chainForward: true, chainInput: true, chainOutput: true, chainPrerouting: true,
	chainRawPre: true, chainRawOut: true, chainNATPost: true, chainNATPre: true, chainNATOut: true}

// trimDump drops base chains and empty sets and maps from a dump, so that
// golden files for rule rendering show only what the case is about.
func trimDump(s string) string {
	var out []string
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "\t\t") && (f[0] == "chain" || f[0] == "set" || f[0] == "map") {
			j := i + 1
			for j < len(lines) && lines[j] != "\t}" {
				j++
			}
			block := lines[i : j+1]
			empty := (f[0] == "set" || f[0] == "map") && !strings.Contains(strings.Join(block, "\n"), "elements =")
			if (f[0] == "chain" && baseChainNames[f[1]]) || empty {
				i = j
				continue
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s: mismatch\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
