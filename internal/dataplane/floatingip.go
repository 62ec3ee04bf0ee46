package dataplane

import (
	"net/netip"
	"slices"

	"github.com/google/nftables/expr"

	"github.com/servalnet/serval/internal/hoststate"
)

// Floating IPs (WorkloadEndpoint spec.ipNATs), as Calico does them: on the
// workload's host, traffic to the external address is DNATed to the
// workload's internal address before routing (nat-prerouting for what
// arrives, nat-output for what the host itself sends); the replies are
// un-NATed by conntrack, so they leave sourced from the external address.
// A workload that talks to its own floating IP is SNATed to it too
// (hairpin), or its reply would not match the connection. Connections the
// workload opens itself keep its own address (natOutgoing applies), as in
// Calico. The route manager also routes the external address to the
// workload's interface, and serval-node advertises it over BGP. As in
// Calico, calc hands floating IPs on only where FelixConfiguration
// floatingIPs is Enabled (or for OpenStack workloads).

// Chain names of the NAT hooks the floating IPs use.
const (
	chainNATPre = "nat-prerouting"
	chainNATOut = "nat-output"
)

// kernelStmt is a statement that encodes itself for the kernel backend
// (statements added after nft_kernel.go's switch).
type kernelStmt interface {
	kernel(b *builder) ([]expr.Any, error)
}

// sNAT: dnat|snat ip|ip6 to ADDR.
type sNAT struct {
	Dst  bool
	Addr netip.Addr
}

func (s sNAT) text() string {
	kw := "snat "
	if s.Dst {
		kw = "dnat "
	}
	return kw + famKW(addrFam(s.Addr)) + " to " + s.Addr.String()
}

func (s sNAT) kernel(*builder) ([]expr.Any, error) {
	t, fam := expr.NATTypeSourceNAT, uint32(nfprotoIPv4)
	if s.Dst {
		t = expr.NATTypeDestNAT
	}
	if addrFam(s.Addr) == v6 {
		fam = nfprotoIPv6
	}
	return []expr.Any{
		&expr.Immediate{Register: regAddr, Data: s.Addr.AsSlice()},
		&expr.NAT{Type: t, Family: fam, RegAddrMin: regAddr, RegAddrMax: regAddr},
	}, nil
}

func addrFam(a netip.Addr) int {
	if a.Is4() {
		return v4
	}
	return v6
}

// floatingIPs lists the local workloads' floating IPs, sorted, without
// duplicates (two endpoints claiming one external address: the first by
// endpoint ID keeps it).
func floatingIPs(weps map[hoststate.EndpointID]hoststate.WorkloadEndpoint) []hoststate.IPNAT {
	ids := make([]hoststate.EndpointID, 0, len(weps))
	for id, ep := range weps {
		if len(ep.IPNATs) > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	seen := map[netip.Addr]bool{}
	var out []hoststate.IPNAT
	for _, id := range ids {
		for _, n := range weps[id].IPNATs {
			if !n.Internal.IsValid() || !n.External.IsValid() || n.Internal.Is4() != n.External.Is4() || seen[n.External] {
				continue
			}
			seen[n.External] = true
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b hoststate.IPNAT) int { return a.External.Compare(b.External) })
	return out
}

// renderFloatingIPs renders the DNAT chains and the hairpin SNAT rules
// that go first in nat-postrouting.
func renderFloatingIPs(fips []hoststate.IPNAT) (pre, out *chain, hairpin []rule) {
	pre = &chain{Name: chainNATPre, Base: &hook{Hook: "prerouting", Type: "nat", Priority: -100}}
	out = &chain{Name: chainNATOut, Base: &hook{Hook: "output", Type: "nat", Priority: -100}}
	for _, n := range fips {
		fam := addrFam(n.External)
		dnat := rule{Stmts: []stmt{
			mNfproto{Fam: fam},
			mAddr{Fam: fam, Dst: true, Prefixes: []netip.Prefix{netip.PrefixFrom(n.External, n.External.BitLen())}},
			sNAT{Dst: true, Addr: n.Internal},
		}, Comment: "floating IP"}
		pre.Rules = append(pre.Rules, dnat)
		out.Rules = append(out.Rules, dnat)
		in := []netip.Prefix{netip.PrefixFrom(n.Internal, n.Internal.BitLen())}
		hairpin = append(hairpin, rule{Stmts: []stmt{
			mNfproto{Fam: fam},
			mAddr{Fam: fam, Prefixes: in},
			mAddr{Fam: fam, Dst: true, Prefixes: in},
			sNAT{Addr: n.External},
		}, Comment: "floating IP hairpin"})
	}
	return pre, out, hairpin
}
