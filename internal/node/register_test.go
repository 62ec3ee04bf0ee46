package node

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

func TestRegister(t *testing.T) {
	ctx := context.Background()
	ds := datastore.NewMemory(slog.New(slog.DiscardHandler))
	v4 := netip.MustParsePrefix("172.17.8.101/24")
	v6 := netip.MustParsePrefix("fd00:8::101/64")

	steps := []struct {
		name    string
		id      Identity
		prepare func(t *testing.T) // changes made by someone else before the step
		want    func(t *testing.T, n *api.Node)
	}{
		{"creates", Identity{Name: "host1", IPv4: v4}, nil, func(t *testing.T, n *api.Node) {
			if n.Spec.BGP.IPv4Address != "172.17.8.101/24" || n.Spec.BGP.IPv6Address != "" {
				t.Errorf("bgp = %+v", n.Spec.BGP)
			}
		}},
		{"adds IPv6 and AS, keeps labels and cluster ID", Identity{Name: "host1", IPv4: v4, IPv6: v6, ASNumber: "64514"},
			func(t *testing.T) {
				r, _ := ds.Get(ctx, api.Key{Kind: "Node", Name: "host1"})
				n := r.(*api.Node)
				n.Labels = map[string]string{"rack": "r1"}
				n.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
				if _, err := ds.Update(ctx, n); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, n *api.Node) {
				b := n.Spec.BGP
				if b.IPv6Address != "fd00:8::101/64" || b.ASNumber == nil || b.ASNumber.String() != "64514" {
					t.Errorf("bgp = %+v", b)
				}
				if n.Labels["rack"] != "r1" || b.RouteReflectorClusterID != "224.0.0.1" {
					t.Errorf("operator's fields lost: labels %v, bgp %+v", n.Labels, b)
				}
			}},
		{"unchanged is not rewritten", Identity{Name: "host1", IPv4: v4, IPv6: v6, ASNumber: "64514"}, nil,
			func(t *testing.T, n *api.Node) {
				if n.Generation != 3 { // create, the operator's update, our update
					t.Errorf("generation %d: an unchanged node was written again", n.Generation)
				}
			}},
		{"address moves", Identity{Name: "host1", IPv4: netip.MustParsePrefix("172.17.9.101/24")}, nil,
			func(t *testing.T, n *api.Node) {
				if n.Spec.BGP.IPv4Address != "172.17.9.101/24" || n.Spec.BGP.IPv6Address != "" {
					t.Errorf("bgp = %+v", n.Spec.BGP)
				}
			}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.prepare != nil {
				s.prepare(t)
			}
			n, err := Register(ctx, ds, s.id)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := ds.Get(ctx, api.Key{Kind: "Node", Name: s.id.Name})
			if err != nil {
				t.Fatal(err)
			}
			if stored.GetObjectMeta().ResourceVersion != n.ResourceVersion {
				t.Errorf("returned version %s, stored %s", n.ResourceVersion, stored.GetObjectMeta().ResourceVersion)
			}
			s.want(t, stored.(*api.Node))
		})
	}
}
