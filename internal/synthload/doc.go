// Package synthload writes the synthetic datastore load that serval-node is
// measured with (bench/'s agent load, internal/node's BenchmarkColdSync):
// workload endpoints on one local node and on 500 remote hosts, and
// GlobalNetworkPolicies each selecting a tenth of the endpoints, with
// ingress rules over 50 distinct source selectors.
//
// Use:
//
//	err := synthload.Write(ctx, ds, synthload.Spec{Node: "benchnode", Local: 250, Remote: 100_000, Policies: 2000})
//	// a policy change: the same policy, another port
//	_, err = ds.Update(ctx, synthload.Policy(7, version))
package synthload
