// Package kubeapi runs a real Kubernetes API server: the files it needs
// (a CA made for the run, a serving certificate, the admin's bearer token
// and client certificate, the service-account key pair), its command line,
// an admin kubeconfig, and a readiness check. It is what internal/kubetest
// (tests) and internal/lab (serval-lab's kubernetes datastore) share.
//
// Cluster (New) runs an embedded etcd (internal/datastore/embedetcd) and a
// kube-apiserver process on loopback ports picked free, for the life of
// the calling process (the API server is killed with it). The lab instead
// starts kube-apiserver as a daemon of its own in its datastore namespace
// from Files.Args, listening on the datastore's address.
//
// The binaries (kube-apiserver and kubectl, Kubernetes Version) are built
// by scripts/k8s-binaries.sh into ${SERVAL_K8S_CACHE:-/root/.cache/serval/k8s}
// /VERSION/bin (BinDir), outside the repository; a missing one is a
// *MissingBinaryError saying how to build it.
//
// The API server is set up as a small real cluster's would be:
//   - TLS with a serving certificate from the run's CA (for 127.0.0.1, ::1,
//     localhost, the `kubernetes` Service's names and addresses, and the
//     addresses the caller adds);
//   - an admin (AdminUser, group system:masters) authenticated by a static
//     bearer token or a client certificate, and authorization by RBAC;
//   - service-account tokens signed by a key made for the run, issuer
//     ServiceAccountIssuer;
//   - dual-stack service ranges ServiceCIDRv4 and ServiceCIDRv6.
//
// There is no kube-controller-manager, scheduler or kubelet: namespaces get
// no default ServiceAccount, deleted namespaces stay Terminating, there is
// no garbage collection of owned objects, and Pods are never scheduled or
// run. CustomResourceDefinitions work (the API server serves them itself).
package kubeapi
