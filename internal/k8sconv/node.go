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

// nodeAnnotations are the annotations NodeToNode reads, in order, each
// with how it sets the node.
var nodeAnnotations = []struct {
	key string
	set func(*api.Node, string)
}{
	{AnnotationNodeIPv4Address, func(n *api.Node, v string) { bgp(n).IPv4Address = v }},
	{AnnotationNodeIPv6Address, func(n *api.Node, v string) { bgp(n).IPv6Address = v }},
	{AnnotationNodeRRClusterID, func(n *api.Node, v string) { bgp(n).RouteReflectorClusterID = v }},
	{AnnotationNodeIPIPTunnelAddr, func(n *api.Node, v string) { bgp(n).IPv4IPIPTunnelAddr = v }},
	{AnnotationNodeASNumber, func(n *api.Node, v string) { a := api.ASNumberFromString(v); bgp(n).ASNumber = &a }},
	{AnnotationNodeIPv4VXLANTunnelAddr, func(n *api.Node, v string) { n.Spec.IPv4VXLANTunnelAddr = v }},
	{AnnotationNodeVXLANTunnelMACAddr, func(n *api.Node, v string) { n.Spec.VXLANTunnelMACAddr = v }},
	{AnnotationNodeIPv6VXLANTunnelAddr, func(n *api.Node, v string) { n.Spec.IPv6VXLANTunnelAddr = v }},
	{AnnotationNodeVXLANTunnelMACAddrV6, func(n *api.Node, v string) { n.Spec.VXLANTunnelMACAddrV6 = v }},
	{AnnotationNodeWireguardIPv4Addr, func(n *api.Node, v string) { wg(n).InterfaceIPv4Address = v }},
	{AnnotationNodeWireguardIPv6Addr, func(n *api.Node, v string) { wg(n).InterfaceIPv6Address = v }},
	{AnnotationNodeWireguardPublicKey, func(n *api.Node, v string) { n.Status.WireguardPublicKey = v }},
	{AnnotationNodeWireguardPublicKeyV6, func(n *api.Node, v string) { n.Status.WireguardPublicKeyV6 = v }},
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
