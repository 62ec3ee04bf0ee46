package kubeevents

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// Sink is where a Recorder writes its Events.
type Sink interface {
	CreateEvent(ctx context.Context, ev *corev1.Event) error
}

// restSink creates core/v1 Events with a REST client of its own.
// client-go's clientset would do the same, but linking it registers every
// API group of Kubernetes at start: serval-node was resident at 45 MiB
// before its first line of work with it, 28 MiB without, on any
// datastore, for one kind of request.
type restSink struct{ rc rest.Interface }

// NewRESTSink returns a Sink on the API server cfg names.
func NewRESTSink(cfg *rest.Config) (Sink, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering core/v1: %w", err)
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("client for Events at %s: %w", cfg.Host, err)
	}
	return restSink{rc: rc}, nil
}

func (s restSink) CreateEvent(ctx context.Context, ev *corev1.Event) error {
	return s.rc.Post().Namespace(ev.Namespace).Resource("events").Body(ev).Do(ctx).Error()
}
