package calc

import (
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
)

// TestWildcardHostEndpointsMerge: two "*" host endpoints on one host are
// one all-interfaces endpoint with the union of their policies, in policy
// order; a change to either re-renders both; removing one leaves the
// other's policies.
func TestWildcardHostEndpointsMerge(t *testing.T) {
	order := func(o float64) func(*api.GlobalNetworkPolicySpec) {
		return func(s *api.GlobalNetworkPolicySpec) { s.Order = &o; s.Ingress = []api.Rule{{Action: api.Allow}} }
	}
	a, b := hep("all-a", host, "role=a", "*"), hep("all-b", host, "role=b", "*")
	initial := []any{a, b, gnp("pa", "role == 'a'", order(20)), gnp("pb", "role == 'b'", order(10))}
	want := func(lines []string, ids ...string) {
		t.Helper()
		var heps []string
		for _, l := range lines {
			if strings.HasPrefix(l, "hep ") {
				heps = append(heps, l)
			}
		}
		if len(heps) != len(ids) {
			t.Fatalf("host endpoint lines:\n%s\nwant %d", strings.Join(heps, "\n"), len(ids))
		}
		for i, id := range ids {
			if !strings.HasPrefix(heps[i], "hep "+id+" ") {
				t.Errorf("line %d: %s, want endpoint %s", i, heps[i], id)
			}
		}
	}
	got, _ := run(initial)
	want(got, "all-a", "all-b")
	for _, l := range got {
		if strings.HasPrefix(l, "hep ") && !strings.Contains(l, "tiers=[default(Deny){in:pb,pa out:}]") {
			t.Errorf("not merged in policy order: %s", l)
		}
	}
	// Relabel b out of pb: both endpoints lose it.
	b2 := hep("all-b", host, "role=c", "*")
	got, _ = run(initial, []any{b2})
	want(got, "all-a", "all-b")
	for _, l := range got {
		if strings.HasPrefix(l, "hep ") && !strings.Contains(l, "tiers=[default(Deny){in:pa out:}]") {
			t.Errorf("after relabel: %s", l)
		}
	}
	// Delete a: b keeps only its own policy.
	got, _ = run(initial, []any{del(a)})
	if !contains(got, "hep-remove all-a") || !contains(got, "hep all-b if=* ips=[] tiers=[default(Deny){in:pb out:}]") {
		t.Errorf("after deleting all-a:\n%s", strings.Join(got, "\n"))
	}
}
