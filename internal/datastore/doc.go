// Package datastore is where Serval keeps its resources: one Interface
// (create, update, delete, get, list, watch, with Calico-style
// resourceVersions) and its backends.
//
//   - Etcd, on etcd v3 (an external cluster with TLS and auth, or the
//     embedded member of package embedetcd), is the real one.
//   - Memory keeps etcd's model in memory, for unit tests.
//
// Both share one implementation of the semantics (store.go) over a small
// key-value layer, so a test that passes against Memory means the same
// against etcd; package dstest runs one conformance suite against both.
//
// Every write fills in defaults (SetDefaults) and validates (api.Validate)
// before storing; values are stored as JSON at
// <prefix>/<plural>/[<namespace>/]<name> (prefix DefaultPrefix,
// "/serval/v3"); a resource's resourceVersion is the etcd ModRevision of
// its key. Errors wrap ErrNotFound, ErrAlreadyExists, ErrConflict,
// ErrCompacted or ErrUnavailable and say what failed on which resource:
//
//	updating IPPool "pool1": resource was modified since it was read (resourceVersion mismatch) (stored 12, given 9)
//
// Syncer lists and then watches a set of kinds for a consumer such as
// serval-node's calculation graph, and resyncs cleanly (only the
// differences) when the watch history is compacted or the connection
// drops. It lists a page at a time (Pager: fetched, decoded and handed on
// in a pipeline) and remembers only each key's revision, so at 100,000
// endpoints the consumer's model is the only copy.
//
// Usage:
//
//	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{"https://10.0.0.1:2379"},
//		CertFile: "client.pem", KeyFile: "client-key.pem", CAFile: "ca.pem"})
//	if err != nil { ... }
//	defer ds.Close()
//	pool, err := ds.Create(ctx, &api.IPPool{...})
//	if errors.Is(err, datastore.ErrAlreadyExists) { ... }
//	res, err := ds.List(ctx, datastore.ListOptions{Kind: "WorkloadEndpoint",
//		Namespace: "prod", LabelSelector: `app == "db"`, FieldSelector: "spec.node=host1"})
//
//	s := datastore.NewSyncer(ds, callbacks, datastore.SyncerConfig{Kinds: []string{"IPPool", "Node"}})
//	go s.Run(ctx) // callbacks.OnStatus(InSync) once everything has been delivered
package datastore
