package kubernetes

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/k8sconv"
)

// writeNode writes a Node derived from a Kubernetes Node back into it, as
// Calico's Kubernetes datastore does: its BGP, tunnel and WireGuard
// fields and its own labels become annotations of the Kubernetes Node
// (k8sconv.NodeMergePatch), patched on condition that the Node is still
// as read. The kubelet registers Kubernetes Nodes, so a Create only
// reports whether there is one: a Node exists exactly when its
// Kubernetes Node does.
func (s *Store) writeNode(ctx context.Context, op string, n *api.Node, create bool) (api.Resource, error) {
	key := api.KeyOf(n)
	want := n.ResourceVersion
	for range maxUpdateAttempts {
		raw, err := s.do(ctx, key, s.derivedRequest("GET", kubeNodes, "", n.Name))
		if errors.Is(err, datastore.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w: there is no Kubernetes Node %q, and a Node is derived from the Kubernetes Node of its name (the kubelet registers it)", op, datastore.ErrNotFound, n.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if create {
			return nil, fmt.Errorf("%s: %w: Kubernetes Node %q stands for it; update it instead", op, datastore.ErrAlreadyExists, n.Name)
		}
		o, err := kubeNodes.decode(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		kn, ok := o.(*corev1.Node)
		if !ok {
			return nil, fmt.Errorf("%s: the API server answered a %T for Kubernetes Node %q", op, o, n.Name)
		}
		if want != "" && want != kn.ResourceVersion {
			return nil, fmt.Errorf("%s: %w (Kubernetes Node %q is at resourceVersion %s, given %s)", op, datastore.ErrConflict, n.Name, kn.ResourceVersion, want)
		}
		patch, err := k8sconv.NodeMergePatch(kn, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		raw, err = s.do(ctx, key, s.derivedRequest("PATCH", kubeNodes, "", n.Name).
			SetHeader("Content-Type", string(types.MergePatchType)).Body(patch))
		if errors.Is(err, datastore.ErrConflict) && want == "" {
			continue // the kubelet wrote the Node since: read it again
		}
		if err != nil {
			return nil, fmt.Errorf("%s: patching Kubernetes Node %q: %w", op, n.Name, err)
		}
		out, _, err := kubeNodes.read(s.log, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: patched Kubernetes Node %q, but reading it back: %w", op, n.Name, err)
		}
		if out == nil {
			return nil, fmt.Errorf("%s: patched Kubernetes Node %q, which now stands for no Node", op, n.Name)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: %w (gave up after %d attempts under contention)", op, datastore.ErrConflict, maxUpdateAttempts)
}
