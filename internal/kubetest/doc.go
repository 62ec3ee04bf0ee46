// Package kubetest runs a real Kubernetes API server for tests: an embedded
// etcd (internal/datastore/embedetcd) and a kube-apiserver process, both on
// loopback ports picked free, with their files in a temporary directory.
//
// The binaries (kube-apiserver and kubectl, Kubernetes Version) are built by
// scripts/k8s-binaries.sh into ${SERVAL_K8S_CACHE:-/root/.cache/serval/k8s}
// /VERSION/bin, outside the repository; `make test` runs it. A missing
// binary fails the test with a message saying so; it never skips.
//
// The API server is set up as a small real cluster's would be:
//   - TLS with a serving certificate from a CA made for the run (for
//     127.0.0.1, ::1, localhost and the `kubernetes` Service's names and
//     addresses);
//   - an admin (AdminUser, group system:masters) authenticated by a static
//     bearer token or a client certificate, and authorization by RBAC, so
//     that other users see what RBAC allows them (UserConfig impersonates
//     one);
//   - service-account tokens signed by a key made for the run, issuer
//     ServiceAccountIssuer;
//   - dual-stack service ranges ServiceCIDRv4 and ServiceCIDRv6.
//
// There is no kube-controller-manager, scheduler or kubelet: namespaces get
// no default ServiceAccount (create it when a Pod needs it), deleted
// namespaces stay Terminating, there is no garbage collection of owned
// objects, and Pods are never scheduled or run. CustomResourceDefinitions
// work (they are served by the API server itself).
//
// Start-up costs seconds, so a package's tests share one server:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := kubetest.Shared(t)
//		ns := c.Namespace(t, "something")
//		cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
//		...
//		out := c.MustKubectl(t, "get", "pods", "-n", ns)
//	}
//
// Start gives a test a server of its own, stopped when the test ends.
// The API server's log is a file in the cluster's directory; it is printed
// when a test fails. The process is killed when the test process dies
// (Pdeathsig), also on a panic or a test timeout.
//
// Tests using this package run under `flock /tmp/serval-root-tests.lock`,
// like every test that needs more of the machine than a unit test.
package kubetest
