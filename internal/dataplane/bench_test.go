package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/hoststate"
)

// loadScale feeds the reference load: 100 local endpoints, 1,000
// policies over 50 distinct rule selectors (IP sets of 20 members each);
// each policy selects a tenth of the endpoints, so each endpoint has 100
// policies in one tier.
func loadScale(d hoststate.Callbacks) {
	const eps, pols, sels = 100, 1000, 50
	for s := 0; s < sels; s++ {
		set := hoststate.IPSet{ID: fmt.Sprintf("sel-%d", s), Type: hoststate.IPSetNets}
		for m := 0; m < 20; m++ {
			set.Members = append(set.Members, hoststate.IPSetMember{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 70, byte(s), byte(m)}), 32)})
		}
		d.OnIPSetUpdate(set)
	}
	for p := 0; p < pols; p++ {
		d.OnPolicyUpdate(scalePolicy(p, 0))
	}
	for e := 0; e < eps; e++ {
		var ids []hoststate.PolicyID
		for p := e % 10; p < pols; p += 10 {
			ids = append(ids, pid("default", fmt.Sprintf("p%04d", p)))
		}
		d.OnWorkloadEndpointUpdate(wep(fmt.Sprintf("ns/w%03d", e), fmt.Sprintf("cali%011d", e),
			[]netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, byte(e / 250), byte(e % 250)}), 32)},
			[]hoststate.TierPolicies{{Name: "default", DefaultAction: hoststate.Deny, IngressPolicies: ids}}))
	}
	d.OnInSync()
}

func scalePolicy(p, variant int) hoststate.Policy {
	return hoststate.Policy{ID: pid("default", fmt.Sprintf("p%04d", p)), InboundRules: []hoststate.Rule{{
		Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{fmt.Sprintf("sel-%d", p%50)},
		DstPorts: []hoststate.PortRange{{First: uint16(1000 + p + variant), Last: uint16(1000 + p + variant)}}, ID: "r0"}}}
}

func benchCold(b *testing.B, newNFT func(b *testing.B) NFT) {
	var ops int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		nft := newNFT(b)
		d, err := New(Options{NFT: nft})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		loadScale(d)
		if err := d.Apply(context.Background()); err != nil {
			b.Fatal(err)
		}
		ops = d.Stats().Ops
	}
	b.ReportMetric(float64(ops), "nft-ops")
}

func benchChange(b *testing.B, nft NFT) {
	d, err := New(Options{NFT: nft})
	if err != nil {
		b.Fatal(err)
	}
	loadScale(d)
	if err := d.Apply(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var ops int
	took := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d.OnPolicyUpdate(scalePolicy(500, 1+i%2))
		if err := d.Apply(context.Background()); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		ops = d.Stats().Ops
	}
	b.ReportMetric(float64(ops), "nft-ops")
	// From the update callback to the committed transaction: the issue's
	// "datastore event to committed transaction", minus the calc graph.
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[(len(took)-1)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkColdApplyFake(b *testing.B) {
	benchCold(b, func(*testing.B) NFT { return NewFakeNFT() })
}

func BenchmarkPolicyChangeFake(b *testing.B) { benchChange(b, NewFakeNFT()) }

func BenchmarkColdApplyKernel(b *testing.B) {
	needRoot(b)
	benchCold(b, func(b *testing.B) NFT { _, h := newNetns(b, "bc"); return kernelNFT(h) })
}

func BenchmarkPolicyChangeKernel(b *testing.B) {
	needRoot(b)
	_, h := newNetns(b, "bp")
	benchChange(b, kernelNFT(h))
}

// nullNFT accepts every transaction without keeping anything: it measures
// the dataplane's own cost (render, diff, plan) without a backend's.
type nullNFT struct{}

func (nullNFT) Apply([]Op) error         { return nil }
func (nullNFT) Read() (*Snapshot, error) { return newSnapshot(), nil }

func BenchmarkPolicyChangeNull(b *testing.B) { benchChange(b, nullNFT{}) }

func BenchmarkColdApplyNull(b *testing.B) {
	benchCold(b, func(*testing.B) NFT { return nullNFT{} })
}
