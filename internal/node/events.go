package node

import (
	"context"
	"fmt"

	k8s "k8s.io/client-go/kubernetes"

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
	cs, err := k8s.NewForConfig(ks.RESTConfig())
	if err != nil {
		return fmt.Errorf("client for Events on rejected resources: %w", err)
	}
	rec := kubeevents.New(cs, node, a.d.Logger, ks.IsDerived)
	go rec.Run(ctx)
	f.ReportTo(rec)
	return nil
}
