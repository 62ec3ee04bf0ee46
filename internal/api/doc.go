// Package api defines Serval's resources: the kinds of Calico's
// projectcalico.org/v3 API (IPPool, IPAMConfiguration, BGPConfiguration,
// BGPPeer, Node, Profile, NetworkPolicy, GlobalNetworkPolicy, Tier,
// WorkloadEndpoint, HostEndpoint, NetworkSet, GlobalNetworkSet and
// FelixConfiguration), with the same field names, the same defaults and the
// same validation rules, so that manifests written for Calico apply
// unchanged.
//
// A resource goes through three steps before it is stored:
//
//   - Decode reads YAML or JSON (several documents, or a List) strictly:
//     an unknown field or a value of the wrong shape is an error that names
//     the field's full path.
//
//   - SetDefaults fills in what Calico fills in (an IPPool's block size,
//     encapsulation modes, node selector and allowed uses; a policy's tier
//     and types; the default BGPConfiguration's AS number, ...). It is
//     idempotent and never overwrites a value given.
//
//   - Validate (the package function) checks the type, the metadata and
//     the spec and reports every problem at once, one per line, each with
//     its path:
//
//     GlobalNetworkPolicy "allow-db": spec.ingress[0].destination.ports[1]: "70000" is not a valid port (1-65535)
//
// Values that are a number or a string in Calico's API (Protocol, Port,
// ASNumber, Duration) decode leniently and keep what was written, so that
// a bad value is reported by validation with its path rather than by the
// decoder. Validation never panics, whatever the input.
//
// Where Calico's rules changed between versions, the package follows
// current Calico: a policy's name need not carry its tier as a prefix
// ("security.allow-db" and "allow-db" are both valid in tier "security"),
// but it may contain at most one dot.
package api
