// Package admission validates what the node agent reads from the datastore
// before it reaches the calculation graph (or the BGP loop), as servalctl
// validates what it writes. The datastore validates every write of its
// own, but anyone with access to etcd can write around it; without this
// an object servalctl would refuse — a WorkloadEndpoint whose interface
// name walks out of /proc/sys, an Allow rule with an HTTP match — would be
// programmed, or half-programmed, as if it were valid.
//
// An object that fails validation is never half-applied:
//
//   - a policy or profile is replaced by one that fails closed (see
//     failclosed.go): same selector, tier and order, every rule a Deny;
//   - a tier keeps its name and order and gets defaultAction Deny;
//   - anything else (endpoints, network sets, pools, configuration) is
//     passed on as deleted, so an endpoint that fails is not programmed.
//
// Every rejected object is kept in a Registry with why, for the node's
// status and metrics, until a valid version replaces it or it is deleted.
//
//	reg := admission.NewRegistry()
//	syncer := datastore.NewSyncer(ds, admission.NewFilter(graph, reg, log), cfg)
package admission
