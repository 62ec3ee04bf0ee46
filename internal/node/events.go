package node

import (
	"context"
	"fmt"

	"github.com/servalnet/serval/internal/admission"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubeevents"
)

// reportRejections makes the filter record a Kubernetes Event on each
// custom resource it rejects, when the datastore is the Kubernetes API
// (package kubeevents); on another datastore there is nothing to record
// it on.
func (a *Agent) reportRejections(ctx context.Context, f *admission.Filter, node string) error {
	ks, ok := a.d.Datastore.(*kubernetes.Store)
	if !ok {
		return nil
	}
	sink, err := kubeevents.NewRESTSink(ks.RESTConfig())
	if err != nil {
		return fmt.Errorf("client for Events on rejected resources: %w", err)
	}
	rec := kubeevents.New(sink, node, a.d.Logger, ks.IsDerived)
	go rec.Run(ctx)
	f.ReportTo(rec)
	return nil
}
