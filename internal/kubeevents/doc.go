// Package kubeevents records a Kubernetes Event on each custom resource
// that serval-node read from the Kubernetes datastore and rejected
// (package admission): a resource that kubectl wrote and that fails
// Serval's validation is reported on the resource itself, beside the
// agent's status ("servalctl node status") and its metric.
//
// The Event is a core/v1 Event of type Warning, reason FailedValidation,
// on the resource (apiVersion projectcalico.org/v3, its kind, name,
// namespace and uid), its message the validation errors, reported by
// controller "serval-node" as the node's name. One Event is recorded per
// version of a resource (its uid and resourceVersion), not one per
// resync. Events are sent by one goroutine at a bounded rate (Rate a
// second after a burst of Burst); a rejection that finds the queue full
// is dropped (the agent's status still has it, and the next resync or
// version reports it), and one whose Event could not be created is
// reported again at the next resync. Events are written by a plain REST
// client (NewRESTSink), not client-go's clientset, which would make every
// agent register all of Kubernetes' API groups at start.
//
//	sink, err := kubeevents.NewRESTSink(store.RESTConfig())
//	rec := kubeevents.New(sink, nodeName, log, store.IsDerived)
//	go rec.Run(ctx)
//	filter.ReportTo(rec)
package kubeevents
