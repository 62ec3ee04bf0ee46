// Package kube connects Serval to a Kubernetes API server: it finds the
// client configuration (an explicit kubeconfig, $KUBECONFIG, or the
// in-cluster service account) the way kubectl and every controller do.
package kube
