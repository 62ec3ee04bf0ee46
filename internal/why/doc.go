// Package why answers "why can A reach B, or not?" from a snapshot of the
// datastore, with the agents' own code: it runs the calculation graph
// (internal/calc) for the host of each endpoint over the listed objects,
// records the hoststate the graph reports, and walks it for one packet
// with internal/verdict. Egress is evaluated at the source's host, ingress
// at the destination's; a plain address (no endpoint) has no policy of its
// own and that direction is not policed by Serval.
//
// Staged policies (StagedGlobalNetworkPolicy, StagedNetworkPolicy,
// StagedKubernetesNetworkPolicy) are never enforced; Snapshot.WithStaged
// gives the snapshot the staged set would make once promoted, so the two
// traces can be compared.
package why
