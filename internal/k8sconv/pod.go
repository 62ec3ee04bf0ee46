package k8sconv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/netconst"
)

// Annotations Calico's CNI plugin and users put on pods.
const (
	// AnnotationPodIP and AnnotationPodIPs are the pod's addresses as the
	// CNI plugin wrote them (comma-separated for the plural); an empty
	// podIP on a pod being deleted says the plugin has released them.
	AnnotationPodIP  = "cni.projectcalico.org/podIP"
	AnnotationPodIPs = "cni.projectcalico.org/podIPs"
	// AnnotationContainerID is the container the CNI plugin attached.
	AnnotationContainerID = "cni.projectcalico.org/containerID"
	// AnnotationHwAddr asks for the MAC of the pod's eth0.
	AnnotationHwAddr = "cni.projectcalico.org/hwAddr"
	// AnnotationFloatingIPs lists floating IPs (JSON) NATed to the pod.
	AnnotationFloatingIPs = "cni.projectcalico.org/floatingIPs"
	// AnnotationAllowedSourcePrefixes lists (JSON) prefixes the pod may
	// send from besides its own addresses.
	AnnotationAllowedSourcePrefixes = "cni.projectcalico.org/allowedSourcePrefixes"
)

// Labels Calico gives every Kubernetes endpoint, and the profile prefixes.
const (
	LabelNamespace         = "projectcalico.org/namespace"
	LabelOrchestrator      = "projectcalico.org/orchestrator"
	LabelServiceAccount    = "projectcalico.org/serviceaccount"
	NameLabel              = "projectcalico.org/name"
	NamespaceLabelPrefix   = "pcns."
	SALabelPrefix          = "pcsa."
	NamespaceProfilePrefix = "kns."
	SAProfilePrefix        = "ksa."
	// PodEndpoint is the endpoint (interface) name of a pod: Calico
	// derives one endpoint per pod, its eth0.
	PodEndpoint = "eth0"
)

// Converter converts Kubernetes objects. Its zero value converts as a
// default Calico installation does.
type Converter struct {
	// InterfacePrefix starts pods' host-side veth names
	// (netconst.DefaultInterfacePrefix, "cali", when empty). It must be
	// the CNI plugin's, as FELIX_INTERFACEPREFIX must in Calico.
	InterfacePrefix string
}

// NamespaceProfileName is the Profile Calico derives from a Namespace.
func NamespaceProfileName(ns string) string { return NamespaceProfilePrefix + ns }

// SAProfileName is the Profile Calico derives from a ServiceAccount.
func SAProfileName(ns, sa string) string { return SAProfilePrefix + ns + "." + sa }

// PodToWorkloadEndpoint is PodToWorkloadEndpoint of the zero Converter.
func PodToWorkloadEndpoint(pod *corev1.Pod) (*api.WorkloadEndpoint, bool, error) {
	return Converter{}.PodToWorkloadEndpoint(pod)
}

// PodToWorkloadEndpoint derives the pod's endpoint as Calico does. ok is
// false when the pod has none: it uses the host's network, or it is not
// scheduled to a node yet. A pod that has finished (phase Succeeded or
// Failed), or is being deleted and whose addresses the CNI plugin has
// released, keeps its endpoint without addresses, as in Calico. An address,
// MAC or JSON annotation that does not parse is an error naming the pod
// and the annotation, and gives no endpoint.
func (c Converter) PodToWorkloadEndpoint(pod *corev1.Pod) (wep *api.WorkloadEndpoint, ok bool, err error) {
	if pod.Spec.HostNetwork || pod.Spec.NodeName == "" {
		return nil, false, nil
	}
	who := fmt.Sprintf("pod %s/%s", pod.Namespace, pod.Name)
	nets, err := podNetworks(pod)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", who, err)
	}
	if podFinished(pod) {
		nets = nil
	}
	labels := make(map[string]string, len(pod.Labels)+3)
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[LabelNamespace] = pod.Namespace
	labels[LabelOrchestrator] = api.OrchestratorKubernetes
	sa := pod.Spec.ServiceAccountName
	// Calico leaves the label out when the name is too long to be a label
	// value (63 characters); the profile still names the account.
	if sa != "" && len(sa) < 63 {
		labels[LabelServiceAccount] = sa
	}
	profiles := []string{NamespaceProfileName(pod.Namespace)}
	if sa != "" {
		profiles = append(profiles, SAProfileName(pod.Namespace, sa))
	}
	prefix := c.InterfacePrefix
	if prefix == "" {
		prefix = netconst.DefaultInterfacePrefix
	}
	w := &api.WorkloadEndpoint{
		TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{
			Name:              api.WorkloadEndpointName(pod.Spec.NodeName, api.OrchestratorKubernetes, pod.Name, PodEndpoint),
			GenerateName:      pod.GenerateName,
			Namespace:         pod.Namespace,
			UID:               string(pod.UID),
			ResourceVersion:   pod.ResourceVersion,
			CreationTimestamp: timePtr(pod.CreationTimestamp.Time),
			Labels:            labels,
		},
		Spec: api.WorkloadEndpointSpec{
			Orchestrator:       api.OrchestratorKubernetes,
			Node:               pod.Spec.NodeName,
			Pod:                pod.Name,
			ContainerID:        pod.Annotations[AnnotationContainerID],
			Endpoint:           PodEndpoint,
			ServiceAccountName: sa,
			IPNetworks:         nets,
			Profiles:           profiles,
			// The CNI plugin names the veth after "<namespace>.<pod>".
			InterfaceName: netconst.VethName(prefix, pod.Namespace+"."+pod.Name),
		},
	}
	if mac := pod.Annotations[AnnotationHwAddr]; mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return nil, false, fmt.Errorf("%s: annotation %s: %q is not a MAC address", who, AnnotationHwAddr, mac)
		}
		w.Spec.MAC = hw.String()
	}
	if w.Spec.IPNATs, err = floatingIPs(pod, nets); err != nil {
		return nil, false, fmt.Errorf("%s: %w", who, err)
	}
	if w.Spec.AllowSpoofedSourcePrefixes, err = jsonPrefixes(pod.Annotations, AnnotationAllowedSourcePrefixes); err != nil {
		return nil, false, fmt.Errorf("%s: %w", who, err)
	}
	w.Spec.Ports = podPorts(pod.Spec.Containers, nil)
	w.Spec.Ports = podPorts(pod.Spec.InitContainers, w.Spec.Ports)
	return w, true, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// podFinished: the pod no longer owns its addresses. Its phase says it has
// ended, or it is being deleted and the CNI plugin has cleared its podIP
// annotation (it does so when it releases the addresses).
func podFinished(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		if ip, ok := pod.Annotations[AnnotationPodIP]; ok && ip == "" {
			return true
		}
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed, "Completed":
		return true
	}
	return false
}

// podNetworks are the pod's addresses as /32 and /128 networks, taken as
// Calico takes them: status.podIPs, else status.podIP, else the CNI
// plugin's podIPs annotation, else its podIP annotation. (The plugin
// writes the annotations as soon as it has the addresses; the kubelet
// copies them into the status later, and they agree.)
func podNetworks(pod *corev1.Pod) ([]string, error) {
	var ips []string
	var from string
	switch {
	case len(pod.Status.PodIPs) > 0:
		from = "status.podIPs"
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
	case pod.Status.PodIP != "":
		from, ips = "status.podIP", []string{pod.Status.PodIP}
	case pod.Annotations[AnnotationPodIPs] != "":
		from, ips = "annotation "+AnnotationPodIPs, strings.Split(pod.Annotations[AnnotationPodIPs], ",")
	case pod.Annotations[AnnotationPodIP] != "":
		from, ips = "annotation "+AnnotationPodIP, []string{pod.Annotations[AnnotationPodIP]}
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range ips {
		s = strings.TrimSpace(s)
		addr, err := parseAddrOrCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP address", from, s)
		}
		n := netip.PrefixFrom(addr, addr.BitLen()).String()
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// parseAddrOrCIDR reads "10.0.0.5" or "10.0.0.5/32" (the address of a CIDR).
func parseAddrOrCIDR(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap(), nil
}

// floatingIPs maps each floating IP of the annotation onto the pod's
// address of its family; there are none without addresses (Calico).
func floatingIPs(pod *corev1.Pod, nets []string) ([]api.IPNAT, error) {
	raw, ok := pod.Annotations[AnnotationFloatingIPs]
	if !ok || len(nets) == 0 {
		return nil, nil
	}
	var ips []string
	if err := json.Unmarshal([]byte(raw), &ips); err != nil {
		return nil, fmt.Errorf("annotation %s: %q is not a JSON list of addresses: %w", AnnotationFloatingIPs, raw, err)
	}
	var v4, v6 string
	for _, n := range nets {
		p := netip.MustParsePrefix(n)
		if p.Addr().Is4() {
			v4 = p.Addr().String()
		} else {
			v6 = p.Addr().String()
		}
	}
	var out []api.IPNAT
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %q is not an IP address", AnnotationFloatingIPs, s)
		}
		switch {
		case a.Is4() && v4 != "":
			out = append(out, api.IPNAT{InternalIP: v4, ExternalIP: a.String()})
		case !a.Is4() && v6 != "":
			out = append(out, api.IPNAT{InternalIP: v6, ExternalIP: a.String()})
		}
	}
	return out, nil
}

// jsonPrefixes reads a JSON list of CIDRs, written as networks.
func jsonPrefixes(ann map[string]string, key string) ([]string, error) {
	raw := ann[key]
	if raw == "" {
		return nil, nil
	}
	var cidrs []string
	if err := json.Unmarshal([]byte(raw), &cidrs); err != nil {
		return nil, fmt.Errorf("annotation %s: %q is not a JSON list of CIDRs: %w", key, raw, err)
	}
	var out []string
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %q is not a CIDR", key, c)
		}
		out = append(out, p.Masked().String())
	}
	return out, nil
}

// podPorts appends the containers' named ports and host ports, as Calico:
// a port with a number and a name or a host port; protocol TCP (the
// default), UDP or SCTP; other protocols are left out.
func podPorts(containers []corev1.Container, out []api.WorkloadEndpointPort) []api.WorkloadEndpointPort {
	for _, c := range containers {
		for _, p := range c.Ports {
			if p.ContainerPort <= 0 || p.ContainerPort > 65535 || (p.HostPort == 0 && p.Name == "") {
				continue
			}
			var proto string
			switch p.Protocol {
			case corev1.ProtocolTCP, "":
				proto = "TCP"
			case corev1.ProtocolUDP:
				proto = "UDP"
			case corev1.ProtocolSCTP:
				proto = "SCTP"
			default:
				continue
			}
			hostPort := p.HostPort
			if hostPort < 0 || hostPort > 65535 {
				hostPort = 0
			}
			out = append(out, api.WorkloadEndpointPort{
				Name:     p.Name,
				Protocol: api.ProtocolFromString(proto),
				Port:     uint16(p.ContainerPort),
				HostPort: uint16(hostPort),
				HostIP:   p.HostIP,
			})
		}
	}
	return out
}
