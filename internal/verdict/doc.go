// Package verdict evaluates one host's hoststate (what the calculation
// graph tells the dataplane to enforce) for one concrete packet, and says
// why: each tier in order, each policy that selects the endpoint, the rule
// that matched or the tier's end, Pass jumps, profiles and the final
// verdict.
//
// It mirrors the endpoint chains the nftables dataplane renders from the
// same hoststate (internal/dataplane render.go: renderRules, renderTiers,
// renderProfiles; dataplane.go: the from-/to-workload and host endpoint
// chains), rule by rule: a rule's criteria AND, alternatives within a list
// OR, numeric ports OR named ports, ports imply a protocol with ports, a
// rule naming an IP set the host does not have cannot match (and a "not"
// criterion on it always does), Log goes on, Allow ends the walk, Deny
// drops, Pass skips the rest of the tier, a tier whose policies decided
// nothing ends in its default action, then the profiles in order, then
// drop. It knows nothing of selectors, namespaces or the datastore: those
// were resolved by internal/calc into IP sets and per-endpoint policy
// lists, which is what makes the answer the agents' own.
//
// Recorder implements hoststate.Callbacks and keeps the state the graph
// reported, so a Graph run over a datastore listing gives a Host to ask.
//
// Of the base chains it models what decides between a host and its own
// workloads and host endpoints: failsafe ports, DefaultEndpointToHostAction
// and that a host's traffic to its own workloads meets no host endpoint
// egress policy (HostEndpointIn, HostEndpointOut). It does not model
// connection tracking (every packet is evaluated as the first of its
// connection), IPv6 neighbour discovery, which interface a packet uses
// (a host endpoint's policy is applied as if the packet crossed it), nor
// doNotTrack, preDNAT and applyOnForward host endpoint policy.
package verdict
