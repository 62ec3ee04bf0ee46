package node

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// TestFloatingIPsAdvertised: a local workload's floating IP is advertised
// as a borrowed address only where FelixConfiguration floatingIPs is
// Enabled (as the dataplane programs it only then).
func TestFloatingIPsAdvertised(t *testing.T) {
	wep := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"}}
	wep.Namespace, wep.Name = "ns", "w"
	wep.Spec = api.WorkloadEndpointSpec{Node: "n1", Orchestrator: "k8s", IPNetworks: []string{"10.65.0.1/32"},
		IPNATs: []api.IPNAT{{InternalIP: "10.65.0.1", ExternalIP: "203.0.113.10"}}}
	fc := func(name, v string) *api.FelixConfiguration {
		f := &api.FelixConfiguration{TypeMeta: api.TypeMeta{Kind: "FelixConfiguration"}}
		f.Name, f.Spec.FloatingIPs = name, &v
		return f
	}
	ext := netip.MustParseAddr("203.0.113.10")
	for _, c := range []struct {
		name string
		fcs  []*api.FelixConfiguration
		want bool
	}{
		{"unset", nil, false},
		{"enabled", []*api.FelixConfiguration{fc("default", "Enabled")}, true},
		{"node disables", []*api.FelixConfiguration{fc("default", "Enabled"), fc("node.n1", "Disabled")}, false},
		{"other node's", []*api.FelixConfiguration{fc("node.n2", "Enabled")}, false},
	} {
		b := newBGPLoop("n1", nil, nil, slog.New(slog.DiscardHandler), nil)
		b.synced = true
		b.record(datastore.Update{Type: datastore.Added, Key: api.KeyOf(wep), Object: wep})
		for _, f := range c.fcs {
			b.record(datastore.Update{Type: datastore.Added, Key: api.KeyOf(f), Object: f})
		}
		in, ok := b.input()
		if !ok {
			t.Fatal("not synced")
		}
		if got := slices.Contains(in.BorrowedIPs, ext); got != c.want {
			t.Errorf("%s: floating IP advertised=%v, want %v (borrowed %v)", c.name, got, c.want, in.BorrowedIPs)
		}
	}
}
