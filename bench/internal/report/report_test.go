package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestChecksAndRecords(t *testing.T) {
	r := New(Machine{Cores: 2, Kernel: "6.1", Started: time.Unix(0, 0)})
	r.Add(Figure{Part: "dp", Name: "serval.tcp", Unit: "Gbit/s", Samples: []float64{9, 10, 11}})
	r.Add(Figure{Part: "dp", Name: "routed.tcp", Unit: "Gbit/s", Samples: []float64{10, 10, 10}})
	r.Add(Figure{Part: "cp", Name: "prop.p99", Unit: "ms", Value: 300, Runs: 50, Stat: "p99 of 50"})
	if !r.Ratio("serval.tcp", "routed.tcp") {
		t.Fatal("Ratio found no figures")
	}
	if r.Ratio("serval.tcp", "missing") {
		t.Error("Ratio to a missing figure reported success")
	}
	r.Check("dp", "tput ≥ 0.97 × routed", "serval.tcp", true, ">=", 0.97, "why")
	r.Check("cp", "p99 < 250", "prop.p99", false, "<", 250, "agents share 2 cores")
	r.Check("cp", "absent", "nothing", false, "<", 1, "x")
	want := []string{Met, NotMet, NotMeasured}
	for i, tg := range r.targets {
		if tg.Status != want[i] {
			t.Errorf("target %q: status %q, want %q", tg.What, tg.Status, want[i])
		}
	}
	if r.targets[0].Limit != "" || r.targets[1].Limit == "" {
		t.Errorf("limits: a met target keeps none, a missed one keeps its reason: %+v", r.targets)
	}

	var js strings.Builder
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(js.String()), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	for _, k := range []string{"name", "value", "unit", "ratio_to", "ratio"} {
		if _, ok := recs[0][k]; !ok {
			t.Errorf("record lacks %q: %v", k, recs[0])
		}
	}
	if recs[0]["name"] != "dp.serval.tcp" || recs[0]["value"] != 10.0 || recs[0]["ratio_to"] != "dp.routed.tcp" || recs[0]["ratio"] != 1.0 {
		t.Errorf("first record = %v", recs[0])
	}
	// per-round ratios 0.9, 1.0, 1.1: spread 0.2
	if recs[0]["ratio_spread"] != 0.2 {
		t.Errorf("ratio_spread = %v, want 0.2 (per-round ratios 0.9, 1, 1.1)", recs[0]["ratio_spread"])
	}
	if recs[2]["ratio_to"] != nil {
		t.Errorf("a figure without ratio has ratio_to %v, want null", recs[2]["ratio_to"])
	}

	var md strings.Builder
	if err := r.WriteMarkdown(&md, time.Minute, "intro"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"cores: 2", "| dp | tput ≥ 0.97 × routed | 1× (serval.tcp; spread of the 3 rounds' ratios 20%) | **met** |", "| serval.tcp | 10 | Gbit/s | median of 3 | 20% | 1× routed.tcp (spread 20% over 3 rounds) |"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("REPORT.md lacks %q:\n%s", s, md.String())
		}
	}
}

// TestRelativePaths: the repository's absolute path never reaches the
// report; what is under it is named relative to it.
func TestRelativePaths(t *testing.T) {
	for _, tc := range []struct{ root, in, want string }{
		{"/srv/co/serval", "ip netns exec x /srv/co/serval/bin/servalbench agentload --root /srv/co/serval --spec {}", "ip netns exec x bin/servalbench agentload --root . --spec {}"},
		{"/srv/co/serval/", "cd /srv/co/serval && make", "cd . && make"},
		{"", "/srv/co/serval/bin/x", "/srv/co/serval/bin/x"},
		{"/", "/usr/bin/ip", "/usr/bin/ip"},
	} {
		r := New(Machine{})
		r.Root = tc.root
		r.Command("p", tc.in)
		r.Note("p", "ran %s", tc.in)
		if got := r.commands["p"][0]; got != tc.want {
			t.Errorf("root %q: command %q, want %q", tc.root, got, tc.want)
		}
		if got := r.notes["p"][0]; got != "ran "+tc.want {
			t.Errorf("root %q: note %q, want %q", tc.root, got, "ran "+tc.want)
		}
	}
}
