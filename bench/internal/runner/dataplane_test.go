package runner

import (
	"math"
	"strings"
	"testing"

	"github.com/servalnet/serval/bench/internal/report"
)

func TestConnSeries(t *testing.T) {
	tests := []struct {
		bench, name, zero, what string
		ok                      bool
	}{
		{"ConnRate/policies=5000", "conns.policies5000", "conns.policies0", "Serval's table, 5000 policies", true},
		{"ConnRate/uncompiled=1000", "conns.uncompiled1000", "conns.policies0", "Serval's table, 1000 policies kept from compiling (a jump each)", true},
		{"ConnRate/iptables=0", "iptables.conns.rules0", "iptables.conns.rules0", "iptables chain, 0 non-matching rules before the accept", true},
		{"ConnRate/iptables=many", "", "", "", false},
		{"ConnRate/other=1", "", "", "", false},
		{"CNI/sequential-100", "", "", "", false},
		{"policies=1", "", "", "", false},
	}
	for _, tt := range tests {
		name, zero, what, ok := connSeries(tt.bench)
		if name != tt.name || zero != tt.zero || what != tt.what || ok != tt.ok {
			t.Errorf("connSeries(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tt.bench, name, zero, what, ok, tt.name, tt.zero, tt.what, tt.ok)
		}
	}
}

func TestConnCurves(t *testing.T) {
	r := report.New(report.Machine{})
	for name, v := range map[string]float64{
		"conns.policies0.rate": 5000, "conns.policies5000.rate": 4900, "conns.policies0.first_packet_p50": 130,
		"iptables.conns.rules0.rate": 4000, "iptables.conns.rules5000.rate": 1000,
	} {
		r.Add(report.Figure{Part: "dataplane", Name: name, Samples: []float64{v}})
	}
	for _, p := range [][2]string{{"conns.policies0.rate", "conns.policies0.rate"}, {"conns.policies5000.rate", "conns.policies0.rate"}, {"iptables.conns.rules5000.rate", "iptables.conns.rules0.rate"}} {
		r.Ratio(p[0], p[1])
	}
	got := connCurves(r)
	for _, want := range []string{"Serval 0: 1.00× (130 µs), 5000: 0.98×", "iptables 0: 4e+03 conn/s, 5000: 0.25×"} {
		if !strings.Contains(got, want) {
			t.Errorf("connCurves = %q, lacks %q", got, want)
		}
	}
}

// TestDPFigures: every Serval path and reference gets its figures, the
// issue-15 ratios are to the right figures with the per-round spread, and
// their targets are checked.
func TestDPFigures(t *testing.T) {
	s := &Suite{Report: report.New(report.Machine{})}
	tput, rtts := map[string][]float64{}, map[string][]float64{}
	paths := servalPaths()
	names := append(append([]string(nil), referenceKinds...), "serval", "serval_vxlan", "serval_crosssubnet")
	for _, n := range names {
		tput[n] = []float64{10, 10, 10, 10, 10}
		rtts[n] = []float64{0.1, 0.1, 0.1, 0.1, 0.1}
	}
	tput["serval_vxlan"] = []float64{9, 9.5, 9.8, 10, 10} // per-round ratios to vxlan: 0.9 .. 1.0
	s.dpFigures("dataplane", paths, tput, rtts)
	for _, tt := range []struct {
		name, to string
		ratio    float64
		spread   float64
	}{
		{"serval_vxlan.tcp", "vxlan.tcp", 0.98, 0.1 / 0.98},
		{"serval_vxlan.tcp_vs_vxlan_conntrack", "vxlan_conntrack.tcp", 0.98, 0.1 / 0.98},
		{"serval_crosssubnet.tcp", "serval.tcp", 1, 0},
		{"serval_vxlan.rtt", "vxlan.rtt", 1, 0},
		{"routed_conntrack.tcp_vs_vxlan_conntrack", "vxlan_conntrack.tcp", 1, 0},
		{"vxlan_conntrack.tcp", "vxlan.tcp", 1, 0},
		{"serval.tcp", "routed.tcp", 1, 0},
		{"serval.tcp_vs_routed_conntrack", "routed_conntrack.tcp", 1, 0},
		{"serval.tcp_vs_vxlan", "vxlan.tcp", 1, 0},
	} {
		f := s.Report.Get(tt.name)
		if f == nil {
			t.Errorf("no figure %s", tt.name)
			continue
		}
		if f.RatioTo != tt.to || math.Abs(f.Ratio-tt.ratio) > 1e-9 || math.Abs(f.RatioSpread-tt.spread) > 1e-9 || f.RatioRounds != 5 {
			t.Errorf("%s: ratio %v to %q (spread %v over %d rounds), want %v to %q (spread %v over 5)", tt.name, f.Ratio, f.RatioTo, f.RatioSpread, f.RatioRounds, tt.ratio, tt.to, tt.spread)
		}
	}
	var md strings.Builder
	if err := s.Report.WriteMarkdown(&md, 0, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| dataplane | issue 15: throughput over VXLAN ≥ 0.97 × the vxlan reference | 0.98× (serval_vxlan.tcp; spread of the 5 rounds' ratios 10%) | **met** |",
		"| dataplane | issue 15: RTT over VXLAN ≤ 1.1 × the vxlan reference | 1× (serval_vxlan.rtt; spread of the 5 rounds' ratios 0%) | **met** |",
		"| dataplane | issue 15: CrossSubnet within one subnet, throughput ≥ 0.97 × Serval routed | 1× (serval_crosssubnet.tcp; spread of the 5 rounds' ratios 0%) | **met** |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}
