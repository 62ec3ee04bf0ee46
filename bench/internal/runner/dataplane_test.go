package runner

import (
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
