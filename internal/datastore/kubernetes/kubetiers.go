package kubernetes

import (
	"context"
	"errors"
	"fmt"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/k8sconv"
)

// The tiers of ClusterNetworkPolicies. A policy in a tier that does not
// exist is not active in the calculation graph, so the derived kcnp.*
// policies need their tiers: while the API server serves
// ClusterNetworkPolicies, the store serves the Tiers kube-admin and
// kube-baseline (k8sconv.KubeTiers), read-only, beside the stored Tiers.
// They never change, so no watch event carries them: a list has them, at
// resourceVersion kubeTierRevision. A stored Tier of either name cannot
// be written (ErrDerived), and one that kubectl wrote is ignored.
//
// A watch that began while the API server did not serve a resource a kind
// is derived from (ClusterNetworkPolicies installed later) asks for it
// now and then (watch.go, awaitServed) and, once it is served, ends with
// an error wrapping datastore.ErrCompacted: the Syncer then lists every
// kind again, which brings in the policies and these tiers.

// kubeTierRevision is the resourceVersion of the derived tiers.
const kubeTierRevision = "1"

// isKubeTier says whether key names one of the derived tiers.
func isKubeTier(key api.Key) bool {
	return key.Kind == "Tier" && key.Namespace == "" &&
		(key.Name == api.KubeAdminTierName || key.Name == api.KubeBaselineTierName)
}

// servesCNPs asks the API server whether it serves ClusterNetworkPolicies.
func (s *Store) servesCNPs(ctx context.Context) (bool, error) {
	if _, ok := s.derivers["GlobalNetworkPolicy"]; !ok {
		return false, nil
	}
	_, err := s.do(ctx, api.Key{}, s.derivedRequest("GET", clusterNetworkPolicies, "", "").Param("limit", "1"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errCRDMissing):
		return false, nil
	}
	return false, fmt.Errorf("asking whether the API server serves ClusterNetworkPolicies: %w", err)
}

// kubeTiers are the derived tiers when the API server serves
// ClusterNetworkPolicies, else none.
func (s *Store) kubeTiers(ctx context.Context) ([]api.Resource, error) {
	ok, err := s.servesCNPs(ctx)
	if err != nil || !ok {
		return nil, err
	}
	var out []api.Resource
	for _, t := range k8sconv.KubeTiers() {
		t.ResourceVersion = kubeTierRevision
		out = append(out, t)
	}
	return out, nil
}

// getKubeTier is Get of a derived tier.
func (s *Store) getKubeTier(ctx context.Context, key api.Key) (api.Resource, error) {
	tiers, err := s.kubeTiers(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range tiers {
		if api.KeyOf(t) == key {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: the API server serves no ClusterNetworkPolicies, so there is no tier %s", datastore.ErrNotFound, key.Name)
}
