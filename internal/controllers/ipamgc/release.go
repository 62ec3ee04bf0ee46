package ipamgc

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// releaseAddress gives back one candidate address whose grace period is
// over, after reading its pod from the API server itself (not the cache,
// which may lag): the address goes only if that read still finds it
// leaked, and only if the handle it was found with still holds it, so an
// address allocated again meanwhile (another handle) is never touched.
func (c *Controller) releaseAddress(ctx context.Context, it item) error {
	k := addrKey{it.ip, it.handle}
	c.mu.Lock()
	cand := c.addrs[k]
	var since = c.cfg.Clock.Now()
	if cand != nil {
		since = cand.since
	}
	c.mu.Unlock()
	if cand == nil || c.cfg.Clock.Since(since) < c.cfg.GracePeriod {
		return nil // no longer a candidate (the pod came back, or CNI DEL ran)
	}
	ref := cand.pod
	pod, err := c.cfg.Kube.CoreV1().Pods(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		pod = nil
	case err != nil:
		c.m.Errors.WithLabelValues("get-pod").Inc()
		return fmt.Errorf("reading pod %s before releasing %s: %w", ref, it, err)
	}
	v := judge(ref, it.ip, pod)
	if !v.Leaked {
		c.mu.Lock()
		delete(c.addrs, k)
		c.mu.Unlock()
		c.log.Info("address not released: its pod uses it after all", "ip", it.ip, "handle", it.handle, "pod", ref, "why", v.Reason)
		return nil
	}
	released, err := c.cfg.IPAM.ReleaseIPHeldBy(ctx, it.ip, it.handle)
	if err != nil {
		c.m.Errors.WithLabelValues("release-address").Inc()
		return fmt.Errorf("releasing %s: %w", it, err)
	}
	c.mu.Lock()
	delete(c.addrs, k)
	c.mu.Unlock()
	if released {
		c.m.Reclaimed.WithLabelValues(kindAddress).Inc()
		c.log.Info("released leaked address", "ip", it.ip, "handle", it.handle, "pod", ref, "node", ref.Node,
			"why", v.Reason, "candidate_for", c.cfg.Clock.Since(since).String())
	}
	return nil
}

// releaseBlock gives back an empty block; ipam.ReleaseEmptyBlock checks
// again that it is empty, in a way that loses no allocation racing it.
func (c *Controller) releaseBlock(ctx context.Context, it item) error {
	c.mu.Lock()
	n := c.blocks[it.block]
	c.mu.Unlock()
	if n < 2 {
		return nil // found in use since
	}
	released, err := c.cfg.IPAM.ReleaseEmptyBlock(ctx, it.block, it.node)
	if err != nil {
		c.m.Errors.WithLabelValues("release-block").Inc()
		return fmt.Errorf("releasing %s: %w", it, err)
	}
	c.mu.Lock()
	delete(c.blocks, it.block)
	c.mu.Unlock()
	if released {
		c.m.Reclaimed.WithLabelValues(kindBlock).Inc()
		c.log.Info("released empty block", "cidr", it.block, "node", it.node)
	}
	return nil
}

// releaseNode lets go of the affinities and blocks of a node that has no
// Kubernetes Node, once the API server confirms that the Node is gone and
// that no pod is bound to it any more (the pod garbage collector deletes
// them; until then their addresses may be in use). Its addresses stay
// allocated: those of its deleted pods are collected as any other, and a
// block with no affinity is deleted when its last address goes.
func (c *Controller) releaseNode(ctx context.Context, it item) error {
	c.mu.Lock()
	since, ok := c.gone[it.node]
	c.mu.Unlock()
	if !ok || c.cfg.Clock.Since(since) < c.cfg.GracePeriod {
		return nil
	}
	_, err := c.cfg.Kube.CoreV1().Nodes().Get(ctx, it.node, metav1.GetOptions{})
	switch {
	case err == nil:
		c.mu.Lock()
		delete(c.gone, it.node)
		c.mu.Unlock()
		c.log.Info("node not released: it exists", "node", it.node)
		return nil
	case !apierrors.IsNotFound(err):
		c.m.Errors.WithLabelValues("get-node").Inc()
		return fmt.Errorf("reading Node %q before releasing its blocks: %w", it.node, err)
	}
	pods, err := c.cfg.Kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + it.node})
	if err != nil {
		c.m.Errors.WithLabelValues("list-pods").Inc()
		return fmt.Errorf("listing the pods of node %q before releasing its blocks: %w", it.node, err)
	}
	if p := boundTo(pods.Items, it.node); p != nil {
		c.log.Info("node not released yet: a pod is still bound to it", "node", it.node, "pod", p.Namespace+"/"+p.Name)
		return nil // the next scan queues it again
	}
	if err := c.cfg.IPAM.ReleaseNode(ctx, it.node); err != nil {
		c.m.Errors.WithLabelValues("release-node").Inc()
		return fmt.Errorf("releasing %s: %w", it, err)
	}
	c.mu.Lock()
	delete(c.gone, it.node)
	c.mu.Unlock()
	c.m.Reclaimed.WithLabelValues(kindNode).Inc()
	c.log.Info("released the blocks of a deleted node", "node", it.node)
	return nil
}

// boundTo returns a pod of pods bound to node (the field selector is
// checked again here: a server that ignores it must not make a node look
// busy, nor a fake one in tests make it look empty).
func boundTo(pods []corev1.Pod, node string) *corev1.Pod {
	for i := range pods {
		if pods[i].Spec.NodeName == node {
			return &pods[i]
		}
	}
	return nil
}
