package admission

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// TestAgentRefusesEveryRefusal feeds the agent's path every case of the
// API's refusals (internal/api/testdata/invalid/refused.yaml, one per
// refused field), as if written to etcd behind servalctl's back: each is
// reported naming its fields, a policy or profile fails closed (only Deny
// rules come out), anything else is skipped (not passed on).
func TestAgentRefusesEveryRefusal(t *testing.T) {
	data, err := os.ReadFile("../api/testdata/invalid/refused.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fieldRE := regexp.MustCompile(`(spec\.[A-Za-z0-9.\[\]]+): `)
	for i, doc := range strings.Split(string(data), "\n---\n") {
		var fields []string
		for _, l := range strings.Split(doc, "\n") {
			if w, ok := strings.CutPrefix(l, "# want: "); ok {
				if m := fieldRE.FindStringSubmatch(w); m != nil {
					fields = append(fields, m[1])
				}
			}
		}
		objs := objects(t, doc)
		if len(objs) != 1 || len(fields) == 0 {
			t.Fatalf("refused.yaml document %d: %d objects, fields %v", i, len(objs), fields)
		}
		key := api.KeyOf(objs[0])
		t.Run(key.String(), func(t *testing.T) {
			s := newState()
			reg := NewRegistry()
			var passed []datastore.Update
			f := NewFilter(&tap{next: calc.New(host, s, nil), seen: &passed}, reg, nil)
			// A workload in every namespace a case uses, so that its
			// policy selects something here.
			f.OnUpdates(added(objects(t, base+`
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-p-eth0, namespace: prod}
spec: {node: h, orchestrator: cni, workload: p, endpoint: eth0, interfaceName: cali2, ipNetworks: [10.65.0.5/32]}`)...))
			f.OnStatus(datastore.InSync)
			passed = nil
			f.OnUpdates(added(objs...))

			list := reg.List()
			if len(list) != 1 || list[0].Kind != key.Kind || list[0].Name != key.Name {
				t.Fatalf("reported %+v, want %s", list, key)
			}
			for _, fld := range fields {
				if !strings.Contains(list[0].Reason, fld+": ") {
					t.Errorf("the reason does not name %s:\n%s", fld, list[0].Reason)
				}
			}
			switch key.Kind {
			case "GlobalNetworkPolicy", "NetworkPolicy", "Profile":
				if list[0].Action != "failed closed" {
					t.Errorf("action %q, want failed closed", list[0].Action)
				}
				rules := 0
				for _, p := range s.policies {
					for _, r := range append(p.InboundRules, p.OutboundRules...) {
						rules++
						if r.Action != hoststate.Deny {
							t.Errorf("policy %v came out with a %s rule", p.ID, r.Action)
						}
					}
				}
				if p, ok := s.profiles[key.Name]; ok {
					for _, r := range append(p.InboundRules, p.OutboundRules...) {
						rules++
						if r.Action != hoststate.Deny {
							t.Errorf("profile %s came out with a %s rule", key.Name, r.Action)
						}
					}
				}
				if key.Kind != "Profile" && rules == 0 {
					t.Errorf("the policy that failed closed is not in force: %v", s.policies)
				}
			default:
				if list[0].Action != "skipped" {
					t.Errorf("action %q, want skipped", list[0].Action)
				}
				for _, u := range passed {
					if u.Key == key && u.Type != datastore.Deleted {
						t.Errorf("passed on as %v", u.Type)
					}
				}
			}
		})
	}
}
