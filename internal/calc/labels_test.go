package calc

import (
	"maps"
	"reflect"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/selector"
)

// TestSharedLabels: endpoints with the same labels share one map for
// their own labels and one for what selectors see; the maps stay right
// through label and profile changes, a caller changing its object later
// changes nothing, and the table is empty once the entities are gone.
func TestSharedLabels(t *testing.T) {
	rec := newRecorder()
	g := New(host, rec, nil)
	rec.g = g
	weps := []*api.WorkloadEndpoint{
		wep("prod", "w1", "host2", "app=web", "10.0.0.1/32"),
		wep("prod", "w2", "host3", "app=web", "10.0.0.2/32"),
		wep("prod", "w3", host, "app=web", "10.0.0.3/32"),
		wep("prod", "w4", "host2", "app=db", "10.0.0.4/32"),
	}
	objs := []any{profileRes("kns.prod", "env=prod", nil)}
	for _, w := range weps {
		objs = append(objs, w)
	}
	g.OnUpdates(toUpdates(objs))
	ent := func(name string) *entity {
		return g.entities[api.Key{Kind: "WorkloadEndpoint", Namespace: "prod", Name: name}]
	}
	same := func(a, b map[string]string) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	check := func(step string, wantTable int, want map[string]map[string]string) {
		t.Helper()
		for name, labels := range want {
			if got := ent(name).labels; !maps.Equal(got, labels) {
				t.Errorf("%s: %s sees %v, want %v", step, name, got, labels)
			}
		}
		if len(g.labelSets) != wantTable {
			t.Errorf("%s: %d shared label maps, want %d", step, len(g.labelSets), wantTable)
		}
	}
	flat := func(app, env string) map[string]string {
		return map[string]string{"app": app, "pcns.env": env, "pcns.projectcalico.org/name": "prod",
			selector.NamespaceLabel: "prod", orchestratorLabel: "k8s"}
	}

	// Own {app=web}, {app=db}; seen: web and db flattened.
	check("initial", 4, map[string]map[string]string{"w1": flat("web", "prod"), "w3": flat("web", "prod"), "w4": flat("db", "prod")})
	if !same(ent("w1").labels, ent("w2").labels) || !same(ent("w1").labels, ent("w3").labels) || !same(ent("w1").own, ent("w3").own) {
		t.Error("endpoints with the same labels do not share their maps")
	}
	if same(ent("w1").labels, ent("w4").labels) {
		t.Error("endpoints with different labels share a map")
	}
	// The label index lists the shared map once, with its three entities.
	if byV := g.labelIdx["app"]["web"]; len(byV) != 1 {
		t.Errorf("label index app=web holds %d label maps, want the one shared", len(byV))
	} else {
		for ls := range byV {
			if len(ls.members) != 3 {
				t.Errorf("label index app=web lists %d entities, want 3", len(ls.members))
			}
		}
	}

	// The caller's map is its own.
	weps[0].Labels["app"] = "changed"
	check("caller changed its object", 4, map[string]map[string]string{"w1": flat("web", "prod"), "w2": flat("web", "prod")})
	if own := ent("w2").own; !maps.Equal(own, map[string]string{"app": "web"}) {
		t.Errorf("caller changed its object: w2's own labels %v, want app=web", own)
	}

	// The namespace's labels change: everyone is flattened again.
	g.OnUpdates(toUpdates([]any{profileRes("kns.prod", "env=staging", nil)}))
	check("namespace relabelled", 4, map[string]map[string]string{"w1": flat("web", "staging"), "w4": flat("db", "staging")})
	if !same(ent("w1").labels, ent("w3").labels) {
		t.Error("after a profile change, endpoints with the same labels do not share their map")
	}

	// w2 becomes a db: it shares w4's maps; web stays for w1 and w3.
	w2 := wep("prod", "w2", "host3", "app=db", "10.0.0.2/32")
	g.OnUpdates(toUpdates([]any{w2}))
	check("w2 relabelled", 4, map[string]map[string]string{"w2": flat("db", "staging"), "w1": flat("web", "staging")})
	if !same(ent("w2").labels, ent("w4").labels) || !same(ent("w2").own, ent("w4").own) {
		t.Error("w2 with w4's labels does not share w4's maps")
	}

	var dels []any
	for _, w := range weps {
		dels = append(dels, del(w))
	}
	dels = append(dels, del(profileRes("kns.prod", "", nil)))
	g.OnUpdates(toUpdates(dels))
	if len(g.entities) != 0 || len(g.labelSets) != 0 || len(g.labelIdx) != 0 {
		t.Errorf("after deleting everything: %d entities, %d shared label maps, %d label index keys left, want none", len(g.entities), len(g.labelSets), len(g.labelIdx))
	}
}
