package k8sconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/servalnet/serval/internal/api"
)

// Annotations of a Kubernetes Node that carry its Calico (and Serval)
// network identity, as Calico's Kubernetes datastore stores it.
const (
	AnnotationNodeIPv4Address          = "projectcalico.org/IPv4Address"
	AnnotationNodeIPv6Address          = "projectcalico.org/IPv6Address"
	AnnotationNodeASNumber             = "projectcalico.org/ASNumber"
	AnnotationNodeRRClusterID          = "projectcalico.org/RouteReflectorClusterID"
	AnnotationNodeIPIPTunnelAddr       = "projectcalico.org/IPv4IPIPTunnelAddr"
	AnnotationNodeIPv4VXLANTunnelAddr  = "projectcalico.org/IPv4VXLANTunnelAddr"
	AnnotationNodeVXLANTunnelMACAddr   = "projectcalico.org/VXLANTunnelMACAddr"
	AnnotationNodeIPv6VXLANTunnelAddr  = "projectcalico.org/IPv6VXLANTunnelAddr"
	AnnotationNodeVXLANTunnelMACAddrV6 = "projectcalico.org/VXLANTunnelMACAddrV6"
	AnnotationNodeWireguardIPv4Addr    = "projectcalico.org/IPv4WireguardInterfaceAddr"
	AnnotationNodeWireguardIPv6Addr    = "projectcalico.org/IPv6WireguardInterfaceAddr"
	AnnotationNodeWireguardPublicKey   = "projectcalico.org/WireguardPublicKey"
	AnnotationNodeWireguardPublicKeyV6 = "projectcalico.org/WireguardPublicKeyV6"
	// AnnotationNodeLabels holds (JSON) the labels set on the Calico Node
	// itself; the Kubernetes Node's own labels win over them.
	AnnotationNodeLabels = "projectcalico.org/labels"
)

func bgp(n *api.Node) *api.NodeBGPSpec {
	if n.Spec.BGP == nil {
		n.Spec.BGP = &api.NodeBGPSpec{}
	}
	return n.Spec.BGP
}

func wg(n *api.Node) *api.NodeWireguardSpec {
	if n.Spec.Wireguard == nil {
		n.Spec.Wireguard = &api.NodeWireguardSpec{}
	}
	return n.Spec.Wireguard
}

func bgpField(f func(*api.NodeBGPSpec) string) func(*api.Node) string {
	return func(n *api.Node) string {
		if n.Spec.BGP == nil {
			return ""
		}
		return f(n.Spec.BGP)
	}
}

func wgField(f func(*api.NodeWireguardSpec) string) func(*api.Node) string {
	return func(n *api.Node) string {
		if n.Spec.Wireguard == nil {
			return ""
		}
		return f(n.Spec.Wireguard)
	}
}

// nodeAnnotations are the annotations NodeToNode reads, in order, each
// with how it sets the node and how NodeMergePatch reads it back; status
// ones are left alone by NodeMergePatch.
var nodeAnnotations = []struct {
	key    string
	set    func(*api.Node, string)
	get    func(*api.Node) string
	status bool
}{
	{AnnotationNodeIPv4Address, func(n *api.Node, v string) { bgp(n).IPv4Address = v },
		bgpField(func(b *api.NodeBGPSpec) string { return b.IPv4Address }), false},
	{AnnotationNodeIPv6Address, func(n *api.Node, v string) { bgp(n).IPv6Address = v },
		bgpField(func(b *api.NodeBGPSpec) string { return b.IPv6Address }), false},
	{AnnotationNodeRRClusterID, func(n *api.Node, v string) { bgp(n).RouteReflectorClusterID = v },
		bgpField(func(b *api.NodeBGPSpec) string { return b.RouteReflectorClusterID }), false},
	{AnnotationNodeIPIPTunnelAddr, func(n *api.Node, v string) { bgp(n).IPv4IPIPTunnelAddr = v },
		bgpField(func(b *api.NodeBGPSpec) string { return b.IPv4IPIPTunnelAddr }), false},
	{AnnotationNodeASNumber, func(n *api.Node, v string) { a := api.ASNumberFromString(v); bgp(n).ASNumber = &a },
		bgpField(func(b *api.NodeBGPSpec) string {
			if b.ASNumber == nil {
				return ""
			}
			return b.ASNumber.String()
		}), false},
	{AnnotationNodeIPv4VXLANTunnelAddr, func(n *api.Node, v string) { n.Spec.IPv4VXLANTunnelAddr = v },
		func(n *api.Node) string { return n.Spec.IPv4VXLANTunnelAddr }, false},
	{AnnotationNodeVXLANTunnelMACAddr, func(n *api.Node, v string) { n.Spec.VXLANTunnelMACAddr = v },
		func(n *api.Node) string { return n.Spec.VXLANTunnelMACAddr }, false},
	{AnnotationNodeIPv6VXLANTunnelAddr, func(n *api.Node, v string) { n.Spec.IPv6VXLANTunnelAddr = v },
		func(n *api.Node) string { return n.Spec.IPv6VXLANTunnelAddr }, false},
	{AnnotationNodeVXLANTunnelMACAddrV6, func(n *api.Node, v string) { n.Spec.VXLANTunnelMACAddrV6 = v },
		func(n *api.Node) string { return n.Spec.VXLANTunnelMACAddrV6 }, false},
	{AnnotationNodeWireguardIPv4Addr, func(n *api.Node, v string) { wg(n).InterfaceIPv4Address = v },
		wgField(func(w *api.NodeWireguardSpec) string { return w.InterfaceIPv4Address }), false},
	{AnnotationNodeWireguardIPv6Addr, func(n *api.Node, v string) { wg(n).InterfaceIPv6Address = v },
		wgField(func(w *api.NodeWireguardSpec) string { return w.InterfaceIPv6Address }), false},
	{AnnotationNodeWireguardPublicKey, func(n *api.Node, v string) { n.Status.WireguardPublicKey = v },
		func(n *api.Node) string { return n.Status.WireguardPublicKey }, true},
	{AnnotationNodeWireguardPublicKeyV6, func(n *api.Node, v string) { n.Status.WireguardPublicKeyV6 = v },
		func(n *api.Node) string { return n.Status.WireguardPublicKeyV6 }, true},
}

// NodeToNode derives Serval's Node from a Kubernetes Node as Calico does:
// its labels (over those of the projectcalico.org/labels annotation), its
// BGP addresses, AS number and route reflector cluster ID, tunnel and
// WireGuard addresses from the projectcalico.org/* annotations, its pod
// CIDRs, its addresses (the BGP ones as CalicoNodeIP, then the status's
// InternalIP and ExternalIP) and an orchestrator reference (k8s).
//
// An annotation whose value is not valid (Calico logs and ignores it) is
// left out of the node, and the error returned names the node and each
// such annotation; the node is returned either way.
func NodeToNode(kn *corev1.Node) (*api.Node, error) {
	n := &api.Node{
		TypeMeta: api.TypeMeta{Kind: "Node", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{
			Name:              kn.Name,
			UID:               string(kn.UID),
			ResourceVersion:   kn.ResourceVersion,
			CreationTimestamp: timePtr(kn.CreationTimestamp.Time),
		},
	}
	var errs []error
	bad := func(key, v, why string) {
		errs = append(errs, fmt.Errorf("node %s: annotation %s: %q %s", kn.Name, key, v, why))
	}
	labels := map[string]string{}
	if raw, ok := kn.Annotations[AnnotationNodeLabels]; ok && raw != "" {
		var own map[string]string
		if err := json.Unmarshal([]byte(raw), &own); err != nil {
			bad(AnnotationNodeLabels, raw, "is not a JSON object of labels")
		}
		maps.Copy(labels, own)
	}
	maps.Copy(labels, kn.Labels)
	if len(labels) > 0 {
		n.Labels = labels
	}
	for _, a := range nodeAnnotations {
		v, ok := kn.Annotations[a.key]
		if !ok || v == "" {
			continue
		}
		// Check the value alone, on a node of its own, so that the error
		// names this annotation and a bad value never reaches the result.
		probe := &api.Node{}
		a.set(probe, v)
		if fe := probe.Validate(); len(fe) > 0 {
			bad(a.key, v, "is not valid: "+fe[0].Detail)
			continue
		}
		a.set(n, v)
	}
	n.Spec.OrchRefs = []api.OrchRef{{NodeName: kn.Name, Orchestrator: api.OrchestratorKubernetes}}
	if b := n.Spec.BGP; b != nil {
		for _, addr := range []string{b.IPv4Address, b.IPv6Address} {
			if addr != "" {
				n.Spec.Addresses = append(n.Spec.Addresses, api.NodeAddress{Address: addr, Type: "CalicoNodeIP"})
			}
		}
	}
	for _, a := range kn.Status.Addresses {
		var typ string
		switch a.Type {
		case corev1.NodeInternalIP:
			typ = "InternalIP"
		case corev1.NodeExternalIP:
			typ = "ExternalIP"
		default:
			continue
		}
		if _, err := parseAddrOrCIDR(a.Address); err != nil {
			errs = append(errs, fmt.Errorf("node %s: status.addresses: %q (%s) is not an IP address", kn.Name, a.Address, a.Type))
			continue
		}
		n.Spec.Addresses = append(n.Spec.Addresses, api.NodeAddress{Address: a.Address, Type: typ})
	}
	for _, c := range kn.Spec.PodCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			errs = append(errs, fmt.Errorf("node %s: spec.podCIDRs: %q is not a CIDR", kn.Name, c))
			continue
		}
		n.Status.PodCIDRs = append(n.Status.PodCIDRs, c)
	}
	return n, errors.Join(errs...)
}

// NodeMergePatch is the JSON merge patch (RFC 7386) of Kubernetes Node kn
// that makes it stand for n, the inverse of NodeToNode as Calico's
// Kubernetes datastore writes a Node: the projectcalico.org/* annotations
// of n's BGP, tunnel and WireGuard spec (set, or removed when empty), and
// in the projectcalico.org/labels annotation the labels of n that the
// Kubernetes Node does not have. The patch carries kn's resourceVersion,
// so that the API server applies it only to the Node as read.
//
// What NodeToNode takes from elsewhere (addresses, orchestrator
// references, pod CIDRs) and n's status are not written. A label of the
// Kubernetes Node that n changes or leaves out cannot be written through
// the annotation (the Node's own labels win) and is an error naming it.
func NodeMergePatch(kn *corev1.Node, n *api.Node) ([]byte, error) {
	var errs []error
	own := map[string]string{}
	for k, v := range n.Labels {
		if _, fromKube := kn.Labels[k]; !fromKube {
			own[k] = v
		}
	}
	for k, v := range kn.Labels {
		if got, ok := n.Labels[k]; !ok || got != v {
			errs = append(errs, fmt.Errorf("node %s: metadata.labels[%q]: the label is the Kubernetes Node's (%q); change it there", n.Name, k, v))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// A nil value removes the annotation.
	annotations := map[string]any{}
	set := func(key, v string) {
		cur, had := kn.Annotations[key]
		switch {
		case v != "" && v != cur:
			annotations[key] = v
		case v == "" && had:
			annotations[key] = nil
		}
	}
	for _, a := range nodeAnnotations {
		if !a.status {
			set(a.key, a.get(n))
		}
	}
	if !sameLabels(kn.Annotations[AnnotationNodeLabels], own) {
		labels := ""
		if len(own) > 0 {
			raw, err := json.Marshal(own)
			if err != nil {
				return nil, fmt.Errorf("node %s: encoding its labels: %w", n.Name, err)
			}
			labels = string(raw)
		}
		set(AnnotationNodeLabels, labels)
	}
	patch := map[string]any{"metadata": map[string]any{
		"resourceVersion": kn.ResourceVersion,
		"annotations":     annotations,
	}}
	return json.Marshal(patch)
}

// sameLabels says whether the labels annotation raw holds exactly want.
func sameLabels(raw string, want map[string]string) bool {
	var got map[string]string
	if raw != "" && json.Unmarshal([]byte(raw), &got) != nil {
		return false
	}
	return maps.Equal(got, want)
}
