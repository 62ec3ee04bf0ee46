package admission

import (
	"net/netip"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// state keeps what the calculation graph told the dataplane, as the
// dataplane would: the current policies, profiles, endpoints and pools.
type state struct {
	policies map[hoststate.PolicyID]hoststate.Policy
	profiles map[string]hoststate.Profile
	weps     map[hoststate.EndpointID]hoststate.WorkloadEndpoint
	heps     map[hoststate.EndpointID]hoststate.HostEndpoint
	pools    map[string]hoststate.IPPool
	config   hoststate.Config
	wepEver  map[string]bool // interface names ever sent
}

func newState() *state {
	return &state{policies: map[hoststate.PolicyID]hoststate.Policy{}, profiles: map[string]hoststate.Profile{},
		weps: map[hoststate.EndpointID]hoststate.WorkloadEndpoint{}, heps: map[hoststate.EndpointID]hoststate.HostEndpoint{},
		pools: map[string]hoststate.IPPool{}, wepEver: map[string]bool{}}
}

func (s *state) OnIPSetUpdate(hoststate.IPSet)                                         {}
func (s *state) OnIPSetDelta(string, []hoststate.IPSetMember, []hoststate.IPSetMember) {}
func (s *state) OnIPSetRemove(string)                                                  {}
func (s *state) OnPolicyUpdate(p hoststate.Policy)                                     { s.policies[p.ID] = p }
func (s *state) OnPolicyRemove(id hoststate.PolicyID)                                  { delete(s.policies, id) }
func (s *state) OnProfileUpdate(p hoststate.Profile)                                   { s.profiles[p.Name] = p }
func (s *state) OnProfileRemove(name string)                                           { delete(s.profiles, name) }
func (s *state) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) {
	s.weps[ep.ID] = ep
	s.wepEver[ep.InterfaceName] = true
}
func (s *state) OnWorkloadEndpointRemove(id hoststate.EndpointID) { delete(s.weps, id) }
func (s *state) OnHostEndpointUpdate(ep hoststate.HostEndpoint)   { s.heps[ep.ID] = ep }
func (s *state) OnHostEndpointRemove(id hoststate.EndpointID)     { delete(s.heps, id) }
func (s *state) OnIPPoolUpdate(name string, p hoststate.IPPool)   { s.pools[name] = p }
func (s *state) OnIPPoolRemove(name string)                       { delete(s.pools, name) }
func (s *state) OnLocalBlockUpdate(netip.Prefix)                  {}
func (s *state) OnLocalBlockRemove(netip.Prefix)                  {}
func (s *state) OnConfigUpdate(c hoststate.Config)                { s.config = c }
func (s *state) OnInSync()                                        {}

// isDenyAll reports whether rules is the single unconditional Deny of a
// policy that failed closed.
func isDenyAll(rules []hoststate.Rule) bool {
	return len(rules) == 1 && rules[0].Action == hoststate.Deny && rules[0].Protocol == nil &&
		len(rules[0].SrcNets) == 0 && len(rules[0].DstNets) == 0
}

// inTiers reports whether the endpoint's tiers list the policy for the
// direction (ingress true, egress false).
func inTiers(tiers []hoststate.TierPolicies, id hoststate.PolicyID, ingress bool) bool {
	for _, t := range tiers {
		ids := t.EgressPolicies
		if ingress {
			ids = t.IngressPolicies
		}
		for _, p := range ids {
			if p == id {
				return true
			}
		}
	}
	return false
}

// objects decodes YAML documents without validating them, as the syncer
// decodes what it reads.
func objects(t testing.TB, yaml string) []api.Resource {
	t.Helper()
	docs, err := api.Decode("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	var out []api.Resource
	for _, d := range docs {
		out = append(out, d.Resource)
	}
	return out
}

func added(rs ...api.Resource) []datastore.Update {
	var us []datastore.Update
	for _, r := range rs {
		us = append(us, datastore.Update{Type: datastore.Added, Key: api.KeyOf(r), Object: r, Revision: 1})
	}
	return us
}
