// Package k8s runs Serval in a lab whose datastore is a Kubernetes API
// server (serval-lab's datastore kind kubernetes): pods created through the
// API and attached with the CNI plugin in Kubernetes mode, as a kubelet
// would, serval-node on the kubernetes backend, and Kubernetes
// NetworkPolicy enforced between them. The tests need root, the built
// binaries (TestMain builds them) and the Kubernetes binaries of
// scripts/k8s-binaries.sh; they run under
// `flock /tmp/serval-root-tests.lock`, as every lab test.
package k8s
