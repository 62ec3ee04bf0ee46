package ipamgc

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/ipam"
)

// podRef is the pod an allocation was made for, read from the attributes
// the CNI plugin stores with it.
type podRef struct {
	Namespace, Name string
	Node            string
	UID             string // "" when the plugin did not record it
}

func (r podRef) String() string { return r.Namespace + "/" + r.Name }

// podOf tells whether an allocation belongs to a Kubernetes pod, and
// which. Only such allocations are collected: the CNI plugin in
// Kubernetes mode stores the node, the pod's namespace and name, and the
// WorkloadEndpoint name, which for a pod is
// <node>-k8s-<pod>-<interface> (dashes doubled). Addresses of other
// workloads (orchestrator "cni"), tunnel addresses and addresses assigned
// by hand lack these and are never touched.
func podOf(attrs map[string]string) (podRef, bool) {
	r := podRef{Namespace: attrs[ipam.AttrNamespace], Name: attrs[ipam.AttrWorkload],
		Node: attrs[ipam.AttrNode], UID: attrs[ipam.AttrPodUID]}
	if r.Namespace == "" || r.Name == "" || r.Node == "" {
		return podRef{}, false
	}
	prefix := api.WorkloadEndpointName(r.Node, api.OrchestratorKubernetes, r.Name, "")
	iface, found := strings.CutPrefix(attrs[ipam.AttrEndpoint], prefix)
	// The rest is the interface, its dashes doubled: a single dash means
	// the name was another pod's ("web-2" after "web").
	if !found || iface == "" || strings.Contains(strings.ReplaceAll(iface, "--", ""), "-") {
		return podRef{}, false
	}
	return r, true
}

// verdict is what one look at a pod says about an address allocated for
// it.
type verdict struct {
	// Leaked: the address is not used by the pod it was allocated for,
	// which may therefore have it back after the grace period.
	Leaked bool
	Reason string
}

// judge decides whether the address ip, allocated for ref, is leaked,
// given the pod of that namespace and name as read now (nil: there is
// none). The rule it keeps: an address that a pod which exists may be
// using is never leaked. In order:
//
//   - no pod of that name: leaked ("pod gone"), the pod was deleted and
//     its CNI DEL never ran (its node was down, or the plugin failed);
//   - the allocation records a pod UID and the pod has another: leaked
//     ("pod replaced"), a pod recreated under the same name;
//   - the pod has finished (Succeeded or Failed): leaked ("pod
//     finished"). Its containers have exited, nothing uses the address,
//     and its endpoint has no addresses (Calico's rule too), even though
//     its status may still list it;
//   - the pod's status lists ip: in use;
//   - the pod is bound to another node and its status lists addresses
//     (it started there, with others): leaked ("pod on another node"), a
//     pod recreated under the same name elsewhere;
//   - anything else: in use. A pod that has not reported its addresses
//     yet is starting, and may be using this one; a running pod on the
//     same node that lists other addresses may be using this one on a
//     second interface, which its status does not show.
func judge(ref podRef, ip netip.Addr, pod *corev1.Pod) verdict {
	switch {
	case pod == nil:
		return verdict{Leaked: true, Reason: "pod gone"}
	case ref.UID != "" && string(pod.UID) != ref.UID:
		return verdict{Leaked: true, Reason: "pod replaced"}
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return verdict{Leaked: true, Reason: "pod finished"}
	case hasIP(pod, ip):
		return verdict{Reason: "in use"}
	case pod.Spec.NodeName != "" && pod.Spec.NodeName != ref.Node && len(pod.Status.PodIPs) > 0:
		return verdict{Leaked: true, Reason: "pod on another node"}
	}
	return verdict{Reason: "pod exists"}
}

func hasIP(pod *corev1.Pod, ip netip.Addr) bool {
	for _, p := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(p.IP); err == nil && a.Unmap() == ip.Unmap() {
			return true
		}
	}
	if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a.Unmap() == ip.Unmap() {
		return true
	}
	return false
}
