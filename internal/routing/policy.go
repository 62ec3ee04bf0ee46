package routing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"

	api "github.com/osrg/gobgp/v3/api"
)

// Names of Serval's GoBGP policies.
const (
	exportPolicy = "serval-nexthop"
	importPolicy = "serval-reflected"
)

// reconcilePolicy installs Serval's GoBGP policies. GoBGP has
// per-neighbor policies only for route-server clients, so each per-peer
// choice is a global policy with a neighbor-set condition:
//   - export "serval-nexthop" implements nextHopMode;
//   - import "serval-reflected", on a route reflector, implements the
//     CLUSTER_LIST loop check of RFC 4456 section 8 that GoBGP leaves out.
//     A reflector of the same cluster (a non-client Serval peer) reflects
//     our own clients' routes back to us, without a CLUSTER_LIST (GoBGP adds
//     one only towards clients). Kept, that copy can win the best-path
//     choice (lower router ID) and, once the client is gone, each reflector
//     holds the other's copy and never withdraws it: a black hole. So
//     routes from same-cluster reflectors whose next hop is one of our
//     clients are dropped; we hear those routes from the client itself.
//
// When the import filter changes, the sessions it applies to are soft-reset
// inbound so that routes already accepted are filtered again.
func (s *Speaker) reconcilePolicy(ctx context.Context, d Desired) error {
	req, key, resetIn := policies(d)
	if key == s.policyKey {
		return nil
	}
	if err := s.bgp.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("setting the BGP policies (next hop, reflected routes): %w", err)
	}
	// SetPolicies keeps the assignments it finds (it ignores the request's):
	// they are set on their own, by name. Serval's own policies come first
	// so that a BGPFilter's Accept cannot override them.
	for _, a := range []struct {
		dir      api.PolicyDirection
		policies []string
	}{{api.PolicyDirection_EXPORT, []string{exportPolicy, filterExportPolicy}}, {api.PolicyDirection_IMPORT, []string{importPolicy, filterImportPolicy}}} {
		var ps []*api.Policy
		for _, name := range a.policies {
			ps = append(ps, &api.Policy{Name: name})
		}
		err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: a.dir, Policies: ps, DefaultAction: api.RouteAction_ACCEPT,
		}})
		if err != nil {
			return fmt.Errorf("assigning BGP policies %v: %w", a.policies, err)
		}
	}
	s.policyKey = key
	// Sessions whose filters changed are reset so that routes already
	// exchanged go through the new rules. Received routes are filtered
	// again by a soft reset. Sent ones are sent again by a soft reset too,
	// but GoBGP keeps no record of what it sent, so a route the new export
	// rules reject would never be withdrawn: when the new export rules can
	// reject anything, the session is re-established instead (the peer
	// drops what it had and gets only what the rules let through).
	filters := map[netip.Addr]PeerFilters{}
	for _, p := range d.Peers {
		if len(p.Filters.Import)+len(p.Filters.Export) > 0 {
			filters[p.Address] = p.Filters
		}
	}
	const hard = api.ResetPeerRequest_SoftResetDirection(-1)
	reset := map[netip.Addr]api.ResetPeerRequest_SoftResetDirection{}
	for _, a := range resetIn {
		reset[a] = api.ResetPeerRequest_IN
	}
	for _, m := range []map[netip.Addr]PeerFilters{s.filters, filters} {
		for a := range m {
			old, now := s.filters[a], filters[a]
			switch {
			case !reflect.DeepEqual(old.Export, now.Export) && rejectsAny(now.Export):
				reset[a] = hard
			case !reflect.DeepEqual(old, now):
				reset[a] = api.ResetPeerRequest_BOTH
			}
		}
	}
	s.filters = filters
	var errs []error
	for a, dir := range reset {
		if _, ok := s.peers[a]; !ok {
			continue // added after this, under the new policy
		}
		req := &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: dir}
		if dir == hard {
			req = &api.ResetPeerRequest{Address: a.String(), Communication: "BGPFilter export rules changed"}
			s.log.Info("BGP session re-established: its export rules changed", "peer", a)
		}
		if err := s.bgp.ResetPeer(ctx, req); err != nil {
			errs = append(errs, fmt.Errorf("re-filtering routes of %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

func rejectsAny(rules []FilterRule) bool {
	for _, r := range rules {
		if r.Reject {
			return true
		}
	}
	return false
}

// policies computes the GoBGP policy configuration for d (see
// reconcilePolicy), a key that changes whenever it does, and the peers
// whose received routes the import filter may apply to (re-filtered when
// it changes, also when it goes away).
func policies(d Desired) (req *api.SetPoliciesRequest, key string, importFrom []netip.Addr) {
	hostPrefix := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
	var self, keep, reflectors, clients []string
	for _, p := range d.Peers {
		switch p.NextHopMode {
		case NextHopSelf:
			self = append(self, hostPrefix(p.Address))
		case NextHopKeep:
			keep = append(keep, hostPrefix(p.Address))
		}
		if d.ClusterID == "" || p.PeerNode == "" {
			continue
		}
		if p.RRClient {
			clients = append(clients, hostPrefix(p.Address))
		} else {
			reflectors = append(reflectors, hostPrefix(p.Address))
			importFrom = append(importFrom, p.Address)
		}
	}
	fsets, fimp, fexp := filterPolicies(d.Peers)
	key = fmt.Sprint(self, keep, reflectors, clients, fsets, fimp, fexp)

	// Every policy always exists, empty when there is nothing to do, so
	// that the assignments, which outlive SetPolicies, always name them.
	export := &api.Policy{Name: exportPolicy}
	req = &api.SetPoliciesRequest{Policies: []*api.Policy{export, {Name: importPolicy}, fimp, fexp}, DefinedSets: fsets}
	for _, set := range []struct {
		name  string
		list  []string
		apply *api.NexthopAction
	}{{exportPolicy + "-self", self, &api.NexthopAction{Self: true}}, {exportPolicy + "-keep", keep, &api.NexthopAction{Unchanged: true}}} {
		if len(set.list) == 0 {
			continue
		}
		req.DefinedSets = append(req.DefinedSets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: set.name, List: set.list})
		export.Statements = append(export.Statements, &api.Statement{
			Name:       set.name,
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: set.name}},
			Actions:    &api.Actions{Nexthop: set.apply},
		})
	}
	if len(reflectors) > 0 && len(clients) > 0 {
		from := importPolicy + "-from"
		req.DefinedSets = append(req.DefinedSets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: from, List: reflectors})
		req.Policies[1].Statements = []*api.Statement{{
			Name: importPolicy,
			Conditions: &api.Conditions{
				NeighborSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: from},
				NextHopInList: clients,
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT},
		}}
	}
	return req, key, importFrom
}
