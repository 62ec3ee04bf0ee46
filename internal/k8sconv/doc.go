// Package k8sconv derives Serval's resources from Kubernetes objects the
// way Calico's Kubernetes datastore mode derives them, so that a cluster's
// Pods, Namespaces, ServiceAccounts, Nodes, NetworkPolicies and
// ClusterNetworkPolicies are Serval's WorkloadEndpoints, Profiles, Nodes,
// NetworkPolicies and GlobalNetworkPolicies without being stored twice.
//
// It is pure: no I/O, no clients, no logging. The datastore backend that
// watches the Kubernetes API calls it and reports the errors it returns.
//
//	Pod                    → WorkloadEndpoint <node>-k8s-<pod>-eth0
//	                         (PodToWorkloadEndpoint; host-network and
//	                         unscheduled pods have none)
//	Namespace              → Profile kns.<namespace> (pcns.* labels, Allow)
//	ServiceAccount         → Profile ksa.<namespace>.<account> (pcsa.* labels)
//	Node                   → Node (BGP from projectcalico.org/* annotations)
//	NetworkPolicy          → NetworkPolicy knp.default.<name> (tier default,
//	                         order 1000; api.StagedKubernetesNetworkPolicy's
//	                         conversion, the one translation Serval has)
//	ClusterNetworkPolicy   → GlobalNetworkPolicy kcnp.kube-admin.<name> or
//	                         kcnp.kube-baseline.<name> (order = priority),
//	                         in the tiers of KubeTiers
//
// Conversions that meet something they cannot express fail closed and
// say so: the result denies what it would otherwise have allowed, and the
// error names the object and the field.
package k8sconv
