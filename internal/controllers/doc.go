// Package controllers runs serval-controllers: the controllers a
// Kubernetes cluster running Serval needs, of which one replica acts at a
// time. Today that is the IPAM garbage collector (package ipamgc).
//
// Replicas elect a leader through a coordination.k8s.io Lease (client-go's
// leaderelection): only the holder runs the controllers, in a context
// that ends when it stops renewing the Lease, and the others wait to take
// over. A replica that loses the Lease stops its controllers and stands
// for election again. Metrics, including whether this replica leads, are
// served for Prometheus at Options.MetricsAddr.
//
// Usage:
//
//	err := controllers.Run(ctx, controllers.Options{Kube: clientset, IPAM: ipamClient,
//		Identity: hostname, LeaseNamespace: "kube-system", Logger: log})
package controllers
