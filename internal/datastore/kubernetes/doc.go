// Package kubernetes is the datastore backend on the Kubernetes API: it
// implements datastore.Interface (and datastore.Pager) with Serval's kinds
// served as custom resources of the API group projectcalico.org, version
// v3, so that the objects servalctl writes are the ones kubectl shows.
//
// A kind is stored, derived, or both. A stored kind is a
// CustomResourceDefinition's objects (resource = the kind's registry
// plural; the CRDs are package crd's), read and written as JSON over a
// plain REST client: the stored JSON is Serval's own (apiVersion
// projectcalico.org/v3, kind, metadata, spec), and UID,
// creationTimestamp, generation and resourceVersion come from the API
// server. A kind with a status (Node) has it written through the status
// subresource after the object. A derived resource is what a Kubernetes
// object stands for (package k8sconv), read-only: a write fails with
// ErrDerived, saying what to change instead ("derived from Namespaces;
// change the Namespace instead").
//
//	Profile kns.<ns>, ksa.<ns>.<sa>   Namespaces, ServiceAccounts (and stored Profiles)
//	NetworkPolicy knp.default.<name>  networking.k8s.io NetworkPolicies (and stored ones)
//	GlobalNetworkPolicy kcnp.*        ClusterNetworkPolicies, when the cluster serves
//	                                  them (and stored ones)
//	WorkloadEndpoint                  Pods (stored instead with
//	                                  WithStoredWorkloadsAndNodes)
//	Node                              Kubernetes Nodes (likewise); a Node's
//	                                  BGP, tunnel and WireGuard fields and own
//	                                  labels are written back as the Kubernetes
//	                                  Node's projectcalico.org/* annotations
//
// A kind read from several resources is listed from all of them at the
// revision of the first (resourceVersionMatch=Exact), and watched on all
// of them. The client needs RBAC read access to each. Kubernetes' own
// resources (Pods, Nodes, Namespaces, ServiceAccounts, NetworkPolicies)
// are read in protobuf, each object decoded once into its typed form and
// converted; custom resources have only JSON (wire.go).
//
// The datastore's semantics map onto Kubernetes as follows.
//
//   - Every write fills in defaults and validates (api.Validate) first,
//     like the other backends, so the API server only sees valid objects
//     from Serval (objects written with kubectl are checked by the CRD's
//     schema and rules only).
//   - Create is a POST (409 AlreadyExists → ErrAlreadyExists). Update with
//     a resourceVersion is a PUT carrying it (409 Conflict → ErrConflict);
//     without one it reads the object and writes it back with that
//     version, retrying when someone else wrote in between, which keeps
//     the stored UID (Kubernetes has no unconditional update of custom
//     resources). Delete reads the object and deletes it with a
//     resourceVersion and UID precondition, so that it returns the object
//     exactly as it was (the API server answers a delete of a custom
//     resource with a Status only).
//   - List reads a page at a time (limit and continue) from one snapshot,
//     whose resourceVersion is the list's Revision; label selectors (in
//     Serval's selector language) and field selectors are evaluated here.
//     The next page is asked for as soon as one's continue token is read,
//     while its items are decoded and the caller digests the page before.
//   - Watch uses the API server's watch (its watch cache is the fan-out;
//     bookmarks keep the last revision fresh). A stream that the server
//     ends (its watch timeout, a slow reader dropped by the watch cache)
//     is resumed from the last revision seen; "410 Gone" (the revision is
//     older than the server's history) is one Error event wrapping
//     datastore.ErrCompacted; a server that cannot be reached is one
//     Error event wrapping datastore.ErrUnavailable.
//
// Two things differ from the etcd backend, because the Kubernetes watch
// does not carry them: a Modified event has no Previous, and a Deleted
// event's object carries the revision of the delete as its
// resourceVersion (the state before the delete, with the delete's
// revision, is what the API server sends).
//
// Usage:
//
//	cfg, err := kube.RESTConfig(kubeconfig, "serval-node")
//	ds, err := kubernetes.New(cfg, log)
//	defer ds.Close()
package kubernetes
