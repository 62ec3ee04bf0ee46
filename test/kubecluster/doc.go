// Package kubecluster tests Serval as a Kubernetes network the way a
// cluster uses it: a lab whose topology has a kubernetes: section (every
// host a node running containerd, kubelet and kube-proxy beside
// serval-node, a top-of-rack router peering with them), pods started by
// kubelet and wired by serval-cni called by containerd, Services through
// kube-proxy, NetworkPolicy enforced on post-DNAT packets, and a
// representative handful of the upstream e2e suite's NetworkPolicy tests
// (the whole focus runs in `make conformance`). Root only; the Kubernetes
// binaries come from scripts/k8s-binaries.sh.
package kubecluster
