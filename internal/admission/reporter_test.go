package admission

import (
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

type nopCallbacks struct{}

func (nopCallbacks) OnStatus(datastore.Status)    {}
func (nopCallbacks) OnUpdates([]datastore.Update) {}

// reports records what a Reporter is told.
type reports struct {
	rejected []Rejected
	objs     []api.Resource
	cleared  []api.Key
}

func (r *reports) Reject(obj api.Resource, rej Rejected) {
	r.rejected = append(r.rejected, rej)
	r.objs = append(r.objs, obj)
}
func (r *reports) Clear(k api.Key) { r.cleared = append(r.cleared, k) }

// TestReporter: the reporter is told of a rejection with the object as it
// was read (not its fail-closed replacement), and of the key when the
// object is valid again or deleted.
func TestReporter(t *testing.T) {
	gnp := func(sel string) *api.GlobalNetworkPolicy {
		return &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy", APIVersion: api.APIVersion},
			ObjectMeta: api.ObjectMeta{Name: "p", UID: "u1", ResourceVersion: "7"},
			Spec:       api.GlobalNetworkPolicySpec{Selector: "all()", Ingress: []api.Rule{{Action: api.Allow, Source: api.EntityRule{Selector: sel}}}}}
	}
	key := api.Key{Kind: "GlobalNetworkPolicy", Name: "p"}
	tests := []struct {
		name         string
		u            datastore.Update
		wantRejected bool
		wantCleared  bool
	}{
		{"invalid", datastore.Update{Type: datastore.Added, Key: key, Object: gnp("role == ((")}, true, false},
		{"valid", datastore.Update{Type: datastore.Modified, Key: key, Object: gnp("role == 'x'")}, false, true},
		{"deleted", datastore.Update{Type: datastore.Deleted, Key: key}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &reports{}
			f := NewFilter(nopCallbacks{}, NewRegistry(), nil)
			f.ReportTo(r)
			out := f.Admit(tt.u)
			if got := len(r.rejected) == 1; got != tt.wantRejected || len(r.rejected) > 1 {
				t.Fatalf("rejections reported: %+v, want one: %v", r.rejected, tt.wantRejected)
			}
			if got := len(r.cleared) == 1 && r.cleared[0] == key; got != tt.wantCleared {
				t.Errorf("cleared %v, want %v", r.cleared, tt.wantCleared)
			}
			if !tt.wantRejected {
				return
			}
			rej, obj := r.rejected[0], r.objs[0].(*api.GlobalNetworkPolicy)
			if rej.Name != "p" || rej.Action != "failed closed" || rej.Reason == "" {
				t.Errorf("rejection %+v", rej)
			}
			if obj.Spec.Ingress[0].Source.Selector != "role == ((" || obj.UID != "u1" || obj.ResourceVersion != "7" {
				t.Errorf("the reporter got %+v, want the object as read", obj)
			}
			if sub := out.Object.(*api.GlobalNetworkPolicy); sub.Spec.Ingress[0].Action != api.Deny {
				t.Errorf("the update passed on did not fail closed: %+v", sub.Spec.Ingress)
			}
		})
	}
}
