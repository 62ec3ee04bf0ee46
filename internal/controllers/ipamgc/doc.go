// Package ipamgc is serval-controllers' IPAM garbage collector: it gives
// back what the CNI plugin's DEL left behind, without ever taking an
// address from a pod that may be using it.
//
// Every scan (each ScanInterval, and at once when a pod or node is
// deleted) reads IPAM's whole state (ipam.Client.State) and judges each
// allocation made for a Kubernetes pod (the CNI plugin's attributes name
// the pod and its node) against the pod in an informer's cache, a cache
// that holds only the pods' and nodes' names, UIDs, nodes, phases and
// addresses. An address whose pod is gone, finished, or replaced becomes a
// candidate; see judge for the exact rule. A candidate that stays one for
// the grace period (15 minutes by default) is queued, and a worker reads
// the pod again from the API server itself, not the cache, right before
// releasing the address with ipam.Client.ReleaseIPHeldBy, which frees it
// only if the handle found holding it still does. A candidate whose pod
// reappears, or that the CNI plugin released meanwhile, is dropped.
//
// An empty block is given back (ipam.Client.ReleaseEmptyBlock) when two
// scans in a row find it empty, except that each node keeps one block per
// address family. A node that holds block affinities but has no
// Kubernetes Node for the grace period is released (ipam.Client.
// ReleaseNode) once the API server confirms the Node is gone and no pod
// is bound to it any more.
//
// The collector keeps its candidates in memory: a collector that starts
// (or takes over leadership) begins every grace period again, which only
// delays releases. Every release is a compare-and-swap write checked
// against what the collector read, so two collectors acting at once (a
// leadership hand-over) cannot release a live address either.
//
// Usage:
//
//	gc, err := ipamgc.New(ipamgc.Config{IPAM: ipam.New(ds, ipam.Config{}), Kube: clientset, Logger: log})
//	...
//	err = gc.Run(ctx) // until ctx ends
package ipamgc
