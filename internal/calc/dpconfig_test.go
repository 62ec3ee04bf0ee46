package calc

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want hoststate.RateLimit
		ok   bool
	}{
		{"5/second", hoststate.RateLimit{Rate: 5, Unit: "second"}, true},
		{"100/minute", hoststate.RateLimit{Rate: 100, Unit: "minute"}, true},
		{"1/day", hoststate.RateLimit{Rate: 1, Unit: "day"}, true},
		{"0/second", hoststate.RateLimit{}, false},
		{"5/fortnight", hoststate.RateLimit{}, false},
		{"5", hoststate.RateLimit{}, false},
	} {
		got, ok := parseRate(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("parseRate(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestDataplaneConfigFields(t *testing.T) {
	dur := func(d time.Duration) *api.Duration { x := api.DurationOf(d); return &x }
	i := func(v int) *int { return &v }
	s := func(v string) *string { return &v }
	g := New("node1", nil, nil)
	def := g.computeConfig()
	if def.LogRate != (hoststate.RateLimit{Burst: 5}) || def.DenyAction != "" || def.IPForwardingDisabled || def.AllowSourceSpoofing ||
		!reflect.DeepEqual(def.InterfaceExclude, []string{"kube-ipvs0"}) || def.NftablesRefreshInterval != nil {
		t.Errorf("defaults: %+v", def)
	}
	g.onFelixConfig("default", &api.FelixConfiguration{ObjectMeta: api.ObjectMeta{Name: "default"}, Spec: api.FelixConfigurationSpec{
		LogActionRateLimit: s("10/minute"), IptablesFilterDenyAction: "Reject", IPForwarding: "Disabled",
		WorkloadSourceSpoofing: "Any", NATOutgoingAddress: "192.0.2.1", InterfaceExclude: "kube-ipvs0,/^veth/,/[/",
		RouteRefreshInterval: dur(0), NftablesRefreshInterval: dur(time.Minute), IptablesRefreshInterval: dur(time.Hour),
	}})
	g.onFelixConfig("node.node1", &api.FelixConfiguration{ObjectMeta: api.ObjectMeta{Name: "node.node1"}, Spec: api.FelixConfigurationSpec{
		LogActionRateLimitBurst: i(20), NftablesFilterDenyAction: "Drop", IPForwarding: "Enabled",
	}})
	got := g.computeConfig()
	zero, minute := time.Duration(0), time.Minute
	if got.LogRate != (hoststate.RateLimit{Rate: 10, Unit: "minute", Burst: 20}) {
		t.Errorf("LogRate = %+v", got.LogRate)
	}
	if got.DenyAction != "Drop" || got.IPForwardingDisabled || !got.AllowSourceSpoofing || got.NATOutgoingAddress != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("merged config: %+v", got)
	}
	if !reflect.DeepEqual(got.InterfaceExclude, []string{"kube-ipvs0", "/^veth/"}) {
		t.Errorf("InterfaceExclude = %q (the invalid expression left out)", got.InterfaceExclude)
	}
	if !reflect.DeepEqual(got.RouteRefreshInterval, &zero) || !reflect.DeepEqual(got.NftablesRefreshInterval, &minute) || got.InterfaceRefreshInterval != nil {
		t.Errorf("refresh intervals: %v %v %v", got.RouteRefreshInterval, got.InterfaceRefreshInterval, got.NftablesRefreshInterval)
	}
}

// TestFloatingIPsGate: ipNATs reach the dataplane only where floatingIPs is
// Enabled; turning it on re-renders the local workloads.
func TestFloatingIPsGate(t *testing.T) {
	w := wep("prod", "a", host, "", "10.0.0.1/32")
	w.Spec.IPNATs = []api.IPNAT{{InternalIP: "10.0.0.1", ExternalIP: "203.0.113.1"}, {InternalIP: "10.9.9.9", ExternalIP: "203.0.113.2"}}
	on := "Enabled"
	fc := &api.FelixConfiguration{TypeMeta: api.TypeMeta{Kind: "FelixConfiguration"}, ObjectMeta: api.ObjectMeta{Name: "default"},
		Spec: api.FelixConfigurationSpec{FloatingIPs: &on}}
	_, rec := run([]any{w})
	g := rec.g
	e := g.local[api.KeyOf(w)]
	if nats, _ := g.wepExtras(e); len(nats) != 0 {
		t.Errorf("floatingIPs unset: %v", nats)
	}
	got, _ := run([]any{w}, []any{fc})
	if !contains(got, "wep prod/a") {
		t.Errorf("enabling floatingIPs did not re-render the workload: %q", got)
	}
	g.onFelixConfig("default", fc)
	nats, _ := g.wepExtras(e)
	if len(nats) != 1 || nats[0].External.String() != "203.0.113.1" {
		t.Errorf("floatingIPs Enabled: %v (the entry whose internal address is not the endpoint's left out)", nats)
	}
}

func TestIptablesRefreshIntervalAlias(t *testing.T) {
	g := New("node1", nil, nil)
	d := api.DurationOf(42 * time.Second)
	g.onFelixConfig("default", &api.FelixConfiguration{ObjectMeta: api.ObjectMeta{Name: "default"}, Spec: api.FelixConfigurationSpec{IptablesRefreshInterval: &d}})
	if got := g.computeConfig().NftablesRefreshInterval; got == nil || *got != 42*time.Second {
		t.Errorf("iptablesRefreshInterval alone: nftables refresh %v", got)
	}
}
