package cni

import (
	"context"
	"errors"
	"fmt"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// endpointStore is where ADD records an attachment's endpoint and DEL
// finds whose it is: WorkloadEndpoints in the datastore, or, in
// Kubernetes, annotations on the pod the endpoint is derived from.
type endpointStore interface {
	describe(id *Identity) string
	// owner says whether the attachment has an endpoint and which
	// container it belongs to.
	owner(ctx context.Context, id *Identity) (endpointOwner, error)
	// write records wep and says whether this call made it (rather than
	// replaced one of the same workload), so a failed ADD undoes only
	// what it made.
	write(ctx context.Context, id *Identity, wep *api.WorkloadEndpoint) (created bool, err error)
	// remove deletes the record; with a version, only that version of it.
	remove(ctx context.Context, id *Identity, version string) error
}

// endpointOwner is what the store knows of an attachment's endpoint.
type endpointOwner struct {
	found     bool
	container string // the container it belongs to; "" when it does not say
	version   string // for a conditional remove
	iface     string // the host interface it names ("" when it names none)
}

// datastoreEndpoints keeps WorkloadEndpoints in the datastore.
type datastoreEndpoints struct{ ds datastore.Interface }

func endpointKey(id *Identity) api.Key {
	return api.Key{Kind: "WorkloadEndpoint", Namespace: id.Namespace, Name: id.EndpointName}
}

func (e datastoreEndpoints) describe(id *Identity) string { return endpointKey(id).String() }

func (e datastoreEndpoints) owner(ctx context.Context, id *Identity) (endpointOwner, error) {
	r, err := e.ds.Get(ctx, endpointKey(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return endpointOwner{}, nil
	}
	if err != nil {
		return endpointOwner{}, fmt.Errorf("reading %s: %w", e.describe(id), err)
	}
	o := endpointOwner{found: true, version: r.GetObjectMeta().ResourceVersion}
	if w, ok := r.(*api.WorkloadEndpoint); ok {
		o.container, o.iface = w.Spec.ContainerID, w.Spec.InterfaceName
	}
	return o, nil
}

// write creates the endpoint, or replaces one left by an earlier ADD of
// the same workload (a restarted pod keeps its endpoint name).
func (e datastoreEndpoints) write(ctx context.Context, _ *Identity, wep *api.WorkloadEndpoint) (bool, error) {
	_, err := e.ds.Create(ctx, wep)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, datastore.ErrAlreadyExists) {
		return false, err
	}
	_, err = e.ds.Update(ctx, wep)
	return false, err
}

func (e datastoreEndpoints) remove(ctx context.Context, id *Identity, version string) error {
	_, err := e.ds.Delete(ctx, endpointKey(id), version)
	if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("deleting %s: %w", e.describe(id), err)
	}
	return nil
}
