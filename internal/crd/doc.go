// Package crd serves Serval's kinds as Kubernetes CustomResourceDefinitions
// in API group projectcalico.org, version v3, so that `kubectl apply -f` of a
// Calico manifest works on a cluster with no aggregated API server.
//
// For builds the CustomResourceDefinition (apiextensions.k8s.io/v1) of one
// kind of internal/api's registry; All builds one for every registered kind,
// including kinds registered at run time (the datastore conformance suite's
// test kinds). Each has one version, v3, served and stored, its scope from
// KindInfo.Namespaced, and a structural OpenAPI v3 schema made by reflection
// over the kind's Go type and its json tags:
//
//   - a struct is an object with its json fields as properties; a field
//     without omitempty/omitzero that is a string (or a port, protocol or
//     duration) is required, as in Calico's own CRDs, but a number or a
//     boolean is not (Serval takes a missing one as zero); a slice, map or
//     pointer written without omitempty may be null (encoding/json writes
//     nil so);
//   - slices are arrays with items, maps objects with additionalProperties;
//   - the types that marshal themselves (protocols, ports and AS numbers,
//     which are a number or a string; durations, which are strings) have a
//     fixed schema here, and a new self-marshalling type without one is an
//     error, so that the schema never guesses;
//   - integers are bounded by their Go type (a uint16 is 0-65535), and
//     FelixConfiguration's `v` tags (enum, loglevel, min, range) and the
//     typed string constants (actions, policy types, encapsulation modes,
//     ...) become enums and bounds;
//   - a few rules that tie two fields together are CEL
//     x-kubernetes-validations (rules.go), each exactly Serval's rule;
//   - metadata is `type: object`: the API server knows ObjectMeta.
//
// The schema is looser than Serval's validation, never stricter: a resource
// that passes api.Load is accepted by the API server, and what the schema
// cannot say (selectors, CIDRs, names, cross-resource rules) is left to
// Serval, which reports a resource kubectl wrote that fails it and fails
// closed.
//
// The CRDs of Serval's own kinds are files in manifests/crds, written by
// `make crds` (go run ./internal/crd/gen); a test fails when they differ
// from what For generates.
package crd
