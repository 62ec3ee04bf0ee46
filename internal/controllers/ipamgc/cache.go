package ipamgc

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// slim keeps of a Pod or Node only what the collector reads, so that the
// informer's cache costs tens of bytes per pod rather than kilobytes:
// for a pod its name, namespace, UID, node, phase and addresses; for a
// node its name and UID. Anything else passes unchanged (a
// cache.DeletedFinalStateUnknown, say). It is the informers' transform.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &corev1.Pod{
			ObjectMeta: slimMeta(o.ObjectMeta),
			Spec:       corev1.PodSpec{NodeName: o.Spec.NodeName},
			Status: corev1.PodStatus{Phase: o.Status.Phase, PodIP: o.Status.PodIP,
				PodIPs: append([]corev1.PodIP(nil), o.Status.PodIPs...)},
		}, nil
	case *corev1.Node:
		return &corev1.Node{ObjectMeta: slimMeta(o.ObjectMeta)}, nil
	}
	return obj, nil
}

func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
}

// byNode indexes pods by the node they are bound to.
const byNode = "node"

func podNode(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}
