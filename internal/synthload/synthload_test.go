package synthload

import (
	"context"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

func TestWrite(t *testing.T) {
	ds := datastore.NewMemory(nil)
	if err := Write(context.Background(), ds, Spec{Node: "n1", Local: 3, Remote: 5, Policies: 4}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind string
		want int
	}{{"WorkloadEndpoint", 8}, {"GlobalNetworkPolicy", 4}} {
		list, err := ds.List(context.Background(), datastore.ListOptions{Kind: tc.kind})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != tc.want {
			t.Errorf("%d %s, want %d", len(list.Items), tc.kind, tc.want)
		}
		if tc.kind != "WorkloadEndpoint" {
			continue
		}
		local := 0
		for _, o := range list.Items {
			if o.(*api.WorkloadEndpoint).Spec.Node == "n1" {
				local++
			}
		}
		if local != 3 {
			t.Errorf("%d endpoints on n1, want 3", local)
		}
	}
	// A new version of a policy is a real change.
	if a, b := Policy(1, 0), Policy(1, 1); a.Spec.Ingress[0].Destination.Ports[0] == b.Spec.Ingress[0].Destination.Ports[0] {
		t.Errorf("versions 0 and 1 of policy 1 allow the same port %v", a.Spec.Ingress[0].Destination.Ports[0])
	}
}
