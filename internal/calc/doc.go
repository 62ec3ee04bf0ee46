// Package calc is Serval's calculation graph: it turns everything the
// datastore holds into what one host must enforce, and reports only the
// changes, through hoststate.Callbacks.
//
// # Wiring
//
//	datastore.Syncer ──OnUpdates/OnStatus──▶ Graph.apply (per kind)
//	                                           │
//	  WorkloadEndpoint, HostEndpoint,          ▼
//	  NetworkSet, GlobalNetworkSet ──▶ entities ──▶ label index ◀── active sets (by hint)
//	  Profile (labelsToApply) ──────▶ inherited, pcns.*, pcsa.* labels │
//	                                     │ local endpoints             │ members, deltas
//	  NetworkPolicy, GlobalNetworkPolicy ▼                             │
//	  Tier ─────────────────────▶ policy ⇄ local endpoint matches      │
//	                                     │ active policies/profiles    │
//	                                     ▼ (rules → set refs) ─────────┘
//	  FelixConfiguration, IPPool,   flush: config, pools, blocks, sets, policies,
//	  BlockAffinity ──────────────▶ profiles, endpoints, then removals
//	                                     ▼
//	                              hoststate.Callbacks
//
// What is computed, as Felix computes it:
//
//   - Local endpoints are the WorkloadEndpoints and HostEndpoints whose
//     spec.node is this host. Selectors see an endpoint's own labels, over
//     the labelsToApply of its profiles (first listed wins), under the
//     implicit labels projectcalico.org/namespace, /orchestrator and
//     /serviceaccount. Entities in a namespace also carry their namespace's
//     labels as "pcns.<key>" (from Profile "kns.<namespace>", plus
//     pcns.projectcalico.org/name) and their service account's as
//     "pcsa.<key>" (from Profile "ksa.<namespace>.<account>").
//   - A policy applies to the local endpoints its selector picks (a
//     NetworkPolicy only in its namespace; preDNAT and doNotTrack policies
//     only to host endpoints). A policy that applies to no local endpoint
//     is not rendered. A policy whose tier has no Tier resource is not
//     active either, as in Calico, where the tier must exist before its
//     policies; the tier "default" exists implicitly (order 1000000,
//     default action Deny). Tiers are ordered by order (unset last) then
//     name, policies by order (unset last) then name.
//   - Rule selectors become IP sets keyed by the canonical form of one
//     combined selector, built as Calico builds it: the selector, scoped to
//     the policy's namespace unless a namespaceSelector says otherwise
//     (rewritten to the pcns.* labels; all() is every namespace, global()
//     none), serviceAccounts (pcsa.* labels and the service account
//     label), and the notSelector folded in. Named ports become sets of
//     (address, protocol, port) filtered by the rule's positive selector.
//     Members are the addresses of every matching entity in the cluster.
//   - Sets are maintained incrementally: an entity update evaluates only the
//     sets indexed under one of its labels (plus those without an index
//     hint) and reports only the members that changed.
//   - An entity keeps only what selectors and sets need (labels,
//     addresses, namespace, service account, named ports); equal label
//     maps are shared between entities (labels.go) and the label index
//     lists each shared map once, with its entities. What only a local
//     endpoint needs hangs off one pointer; set members are counted under
//     packed keys.
//
// Nothing is reported before the first datastore.InSync: the initial state
// is computed once, then reported whole, then OnInSync. After that each
// OnUpdates batch is reported as it is applied.
//
// Bad data in the datastore (a selector or network that does not parse)
// is logged and skipped: a policy with a bad selector is never applied, a
// rule with a bad selector, network or a Kubernetes service match is left
// out of its policy, a missing profile denies everything.
//
// The graph does no I/O and is not safe for concurrent use: it is driven
// from the syncer's goroutine and calls its callbacks from that goroutine.
//
// # Use
//
//	g := calc.New(hostname, dataplaneQueue, logger)
//	syncer := datastore.NewSyncer(ds, g, datastore.SyncerConfig{Kinds: calc.Kinds()})
//	go syncer.Run(ctx)
package calc

import "github.com/servalnet/serval/internal/api"

// Kinds lists the kinds the graph consumes, for datastore.SyncerConfig.
// BlockAffinity is included once a package registers it (the syncer
// refuses kinds it does not know).
func Kinds() []string {
	ks := []string{
		"WorkloadEndpoint", "HostEndpoint", "NetworkSet", "GlobalNetworkSet",
		"NetworkPolicy", "GlobalNetworkPolicy", "Tier", "Profile",
		"FelixConfiguration", "IPPool",
	}
	if _, ok := api.LookupKind(blockAffinityKind); ok {
		ks = append(ks, blockAffinityKind)
	}
	return ks
}
