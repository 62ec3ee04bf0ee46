// Package cniopen opens the datastore a CNI network configuration names:
// etcd, or with datastore_type kubernetes the Kubernetes API server of
// kubernetes.kubeconfig ($KUBECONFIG, else the in-cluster service
// account). The plugin commands set cni.Plugin.OpenDatastore and
// cni.IPAMPlugin.OpenDatastore to Open; package cni itself cannot link
// the Kubernetes backend.
package cniopen
