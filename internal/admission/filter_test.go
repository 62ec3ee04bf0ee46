package admission

import (
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

const host = "h"

// base is a valid workload on this host: policies below select it by
// app == "web", and it uses profile p1.
const base = `
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-w-eth0, namespace: default, labels: {app: web}}
spec: {node: h, orchestrator: cni, workload: w, endpoint: eth0, interfaceName: cali1, ipNetworks: [10.65.0.1/32], profiles: [p1]}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: p1}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
`

const wepID = hoststate.EndpointID("default/h-cni-w-eth0")

// TestAgentRefusals writes objects the API refuses straight into the
// agent's path (as if written to etcd behind servalctl's back) and checks
// that each is skipped or fails closed, and is reported.
func TestAgentRefusals(t *testing.T) {
	gnpID := hoststate.PolicyID{Tier: "default", Kind: "GlobalNetworkPolicy", Name: "bad"}
	npID := hoststate.PolicyID{Tier: "default", Kind: "NetworkPolicy", Name: "default/bad"}
	failedClosed := func(id hoststate.PolicyID, in, out bool) func(t *testing.T, s *state) {
		return func(t *testing.T, s *state) {
			p, ok := s.policies[id]
			if !ok {
				t.Fatalf("policy %v not programmed; have %v", id, s.policies)
			}
			if in != isDenyAll(p.InboundRules) || (!in && len(p.InboundRules) > 0) {
				t.Errorf("inbound rules %+v, want deny-all %v", p.InboundRules, in)
			}
			if out != isDenyAll(p.OutboundRules) || (!out && len(p.OutboundRules) > 0) {
				t.Errorf("outbound rules %+v, want deny-all %v", p.OutboundRules, out)
			}
			w := s.weps[wepID]
			if inTiers(w.Tiers, id, true) != in || inTiers(w.Tiers, id, false) != out {
				t.Errorf("endpoint tiers %+v: want the policy in ingress %v, egress %v", w.Tiers, in, out)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		yaml   string
		key    string // the rejected object, as Key.String prints it
		action string
		reason string // part of the reason
		check  func(t *testing.T, s *state)
	}{{
		name: "http match on Allow",
		yaml: `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: bad}
spec:
  selector: app == "web"
  ingress: [{action: Allow, protocol: TCP, http: {methods: [GET]}}]`,
		key: `GlobalNetworkPolicy "bad"`, action: "failed closed", reason: "spec.ingress[0].http",
		check: failedClosed(gnpID, true, false),
	}, {
		name: "http match on Deny, egress too",
		yaml: `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: bad}
spec:
  selector: app == "web"
  ingress: [{action: Deny, http: {paths: [{prefix: /admin}]}}, {action: Allow}]
  egress: [{action: Allow}]`,
		key: `GlobalNetworkPolicy "bad"`, action: "failed closed", reason: "spec.ingress[0].http",
		check: failedClosed(gnpID, true, true),
	}, {
		name: "service match in a NetworkPolicy",
		yaml: `
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: bad, namespace: default}
spec:
  selector: app == "web"
  types: [Egress]
  egress: [{action: Allow, destination: {services: {name: db}}}]`,
		key: `NetworkPolicy "default/bad"`, action: "failed closed", reason: "spec.egress[0].destination.services",
		check: failedClosed(npID, false, true),
	}, {
		name: "selector that does not parse selects all",
		yaml: `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: bad}
spec:
  selector: app ==
  ingress: [{action: Allow}]`,
		key: `GlobalNetworkPolicy "bad"`, action: "failed closed", reason: "spec.selector",
		check: failedClosed(gnpID, true, false),
	}, {
		name: "profile with an http match",
		yaml: `
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: p1}
spec:
  ingress: [{action: Allow, http: {methods: [GET]}}]
  labelsToApply: {team: a}`,
		key: `Profile "p1"`, action: "failed closed", reason: "spec.ingress[0].http",
		check: func(t *testing.T, s *state) {
			p := s.profiles["p1"]
			if !isDenyAll(p.InboundRules) || !isDenyAll(p.OutboundRules) {
				t.Errorf("profile rules in %+v out %+v, want deny-all", p.InboundRules, p.OutboundRules)
			}
		},
	}, {
		name: "tier with an invalid default action",
		yaml: `
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: sec}
spec: {order: 10, defaultAction: Explode}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: in-sec}
spec:
  tier: sec
  selector: app == "web"
  ingress: [{action: Pass}]`,
		key: `Tier "sec"`, action: "failed closed", reason: "spec.defaultAction",
		check: func(t *testing.T, s *state) {
			w := s.weps[wepID]
			for _, tier := range w.Tiers {
				if tier.Name == "sec" {
					if tier.DefaultAction != hoststate.Deny {
						t.Errorf("tier sec default action %q", tier.DefaultAction)
					}
					return
				}
			}
			t.Errorf("tier sec not in force: %+v", w.Tiers)
		},
	}, {
		name: "interface name out of /proc/sys",
		yaml: `
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h-cni-x-eth0, namespace: default}
spec: {node: h, orchestrator: cni, workload: x, endpoint: eth0, interfaceName: cali/../all, ipNetworks: [10.65.0.2/32]}`,
		key: `WorkloadEndpoint "default/h-cni-x-eth0"`, action: "skipped", reason: "spec.interfaceName",
		check: func(t *testing.T, s *state) {
			if s.wepEver["cali/../all"] {
				t.Error("the endpoint reached the dataplane")
			}
		},
	}, {
		name: "host endpoint with an invalid interface",
		yaml: `
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: bad}
spec: {node: h, interfaceName: "..", expectedIPs: [192.0.2.1]}`,
		key: `HostEndpoint "bad"`, action: "skipped", reason: "spec.interfaceName",
		check: func(t *testing.T, s *state) {
			if len(s.heps) != 0 {
				t.Errorf("host endpoints programmed: %v", s.heps)
			}
		},
	}, {
		name: "pool with an unknown ipipMode",
		yaml: `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bad}
spec: {cidr: 10.65.0.0/16, ipipMode: Sometimes, natOutgoing: true}`,
		key: `IPPool "bad"`, action: "skipped", reason: "spec.ipipMode",
		check: func(t *testing.T, s *state) {
			if _, ok := s.pools["bad"]; ok {
				t.Error("the pool reached the dataplane")
			}
		},
	}, {
		name: "IPv6 pool with an unknown vxlanMode",
		yaml: `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bad}
spec: {cidr: "fd00:65::/112", blockSize: 122, vxlanMode: Sometimes}`,
		key: `IPPool "bad"`, action: "skipped", reason: "spec.vxlanMode",
		check: func(t *testing.T, s *state) {
			if _, ok := s.pools["bad"]; ok {
				t.Error("the pool reached the dataplane")
			}
		},
	}, {
		name: "pool for load balancers",
		yaml: `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bad}
spec: {cidr: 203.0.113.0/24, allowedUses: [LoadBalancer], natOutgoing: true}`,
		key: `IPPool "bad"`, action: "skipped", reason: "spec.allowedUses[0]",
	}, {
		name: "pool restricted to namespaces",
		yaml: `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bad}
spec: {cidr: 10.66.0.0/16, namespaceSelector: tenant == "a"}`,
		key: `IPPool "bad"`, action: "skipped", reason: "spec.namespaceSelector",
	}, {
		name: "felix configuration with WireGuard",
		yaml: `
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {wireguardEnabled: true, logPrefix: from-bad-config}`,
		key: `FelixConfiguration "default"`, action: "skipped", reason: "spec.wireguardEnabled",
		check: func(t *testing.T, s *state) {
			if s.config.LogPrefix == "from-bad-config" {
				t.Error("part of the refused configuration was applied")
			}
		},
	}, {
		name: "BGP peer with workloads",
		yaml: `
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: bad}
spec: {localWorkloadSelector: all(), asNumber: 65001}`,
		key: `BGPPeer "bad"`, action: "skipped", reason: "spec.localWorkloadSelector",
	}, {
		name: "BGP configuration with workload peering",
		yaml: `
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {localWorkloadPeeringIPV4: 169.254.0.179, ignoredInterfaces: [docker0]}`,
		key: `BGPConfiguration "default"`, action: "skipped", reason: "spec.localWorkloadPeeringIPV4",
	}, {
		name: "object stored under another name",
		yaml: `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: elsewhere}
spec: {cidr: 10.67.0.0/16}`,
		key: `IPPool "elsewhere"`, action: "skipped", reason: "names itself",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newState()
			reg := NewRegistry()
			var counts map[string]int
			reg.OnChange(func(by map[string]int) { counts = by })
			var passed []datastore.Update
			f := NewFilter(&tap{next: calc.New(host, s, nil), seen: &passed}, reg, nil)
			f.OnUpdates(added(objects(t, base)...))
			f.OnStatus(datastore.InSync)
			us := added(objects(t, tc.yaml)...)
			if tc.name == "object stored under another name" {
				us[0].Key.Name = "here"
				tc.key = `IPPool "here"`
			}
			f.OnUpdates(us)

			if _, ok := s.weps[wepID]; !ok {
				t.Fatalf("the valid endpoint is not programmed: %v", s.weps)
			}
			list := reg.List()
			found := false
			for _, r := range list {
				k := api.Key{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
				if k.String() == tc.key {
					found = true
					if r.Action != tc.action || !strings.Contains(r.Reason, tc.reason) {
						t.Errorf("reported %+v, want action %q and a reason naming %q", r, tc.action, tc.reason)
					}
				}
			}
			if !found {
				t.Errorf("%s not reported; registry: %+v", tc.key, list)
			}
			if kind := strings.Fields(tc.key)[0]; counts[kind] != 1 {
				t.Errorf("metric counts %v, want 1 %s", counts, kind)
			}
			for _, u := range passed {
				if u.Key.String() == tc.key && tc.action == "skipped" && u.Type != datastore.Deleted {
					t.Errorf("a skipped object was passed on as %v", u.Type)
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// tap records what the filter passes on.
type tap struct {
	next datastore.SyncerCallbacks
	seen *[]datastore.Update
}

func (t *tap) OnStatus(s datastore.Status) { t.next.OnStatus(s) }
func (t *tap) OnUpdates(us []datastore.Update) {
	*t.seen = append(*t.seen, us...)
	t.next.OnUpdates(us)
}

// An endpoint that was valid and is then overwritten with an invalid
// version is removed, not left as it was nor half-updated; a valid version
// afterwards brings it back and clears the report.
func TestInvalidUpdateRemovesEndpoint(t *testing.T) {
	s := newState()
	reg := NewRegistry()
	f := NewFilter(calc.New(host, s, nil), reg, nil)
	f.OnUpdates(added(objects(t, base)...))
	f.OnStatus(datastore.InSync)
	if _, ok := s.weps[wepID]; !ok {
		t.Fatal("endpoint not programmed")
	}
	bad := objects(t, base)[0].(*api.WorkloadEndpoint)
	bad.Spec.InterfaceName = "cali/../all"
	f.OnUpdates([]datastore.Update{{Type: datastore.Modified, Key: api.KeyOf(bad), Object: bad}})
	if _, ok := s.weps[wepID]; ok {
		t.Error("the endpoint is still programmed after an invalid update")
	}
	if len(reg.List()) != 1 {
		t.Errorf("registry %+v", reg.List())
	}
	good := objects(t, base)[0]
	f.OnUpdates([]datastore.Update{{Type: datastore.Modified, Key: api.KeyOf(good), Object: good}})
	if _, ok := s.weps[wepID]; !ok {
		t.Error("the endpoint did not come back")
	}
	if len(reg.List()) != 0 {
		t.Errorf("registry not cleared: %+v", reg.List())
	}
	f.OnUpdates([]datastore.Update{{Type: datastore.Modified, Key: api.KeyOf(bad), Object: bad}})
	f.OnUpdates([]datastore.Update{{Type: datastore.Deleted, Key: api.KeyOf(bad)}})
	if len(reg.List()) != 0 {
		t.Errorf("registry not cleared by the deletion: %+v", reg.List())
	}
}
