package api

import (
	"fmt"
	"net"
	"strings"
)

// HostEndpoint is an interface of a host (or the host's addresses) that
// policy protects like a workload.
type HostEndpoint struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       HostEndpointSpec `json:"spec,omitempty"`
}

// HostEndpointSpec is the content of a HostEndpoint.
type HostEndpointSpec struct {
	// Node is the host the endpoint is on (required).
	Node string `json:"node,omitempty"`
	// InterfaceName is the interface, or "*" for all of the host's
	// interfaces. Either it or ExpectedIPs is required.
	InterfaceName string `json:"interfaceName,omitempty"`
	// ExpectedIPs are the addresses of the interface; selectors in rules
	// match them.
	ExpectedIPs []string `json:"expectedIPs,omitempty"`
	// Profiles to apply, by name.
	Profiles []string `json:"profiles,omitempty"`
	// Ports names ports that rules may refer to by name.
	Ports []EndpointPort `json:"ports,omitempty"`
}

// EndpointPort is a named port of a host endpoint.
type EndpointPort struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
}

func init() {
	Register(KindInfo{
		Kind:       "HostEndpoint",
		Plural:     "hostendpoints",
		ShortNames: []string{"hostendpoint", "hep", "heps"},
		New:        func() Resource { return &HostEndpoint{} },
	})
	Register(KindInfo{
		Kind:       "WorkloadEndpoint",
		Plural:     "workloadendpoints",
		ShortNames: []string{"workloadendpoint", "wep", "weps"},
		Namespaced: true,
		New:        func() Resource { return &WorkloadEndpoint{} },
	})
}

// SetDefaults sets nothing.
func (h *HostEndpoint) SetDefaults() {}

// Validate checks the node, the interface or addresses and the ports.
func (h *HostEndpoint) Validate() ErrorList {
	var errs ErrorList
	s := &h.Spec
	p := Path("spec")
	if s.Node == "" {
		errs.Required(p.Child("node"))
	} else {
		checkName(&errs, p.Child("node"), s.Node)
	}
	if s.InterfaceName == "" && len(s.ExpectedIPs) == 0 {
		errs.Add(p.Child("interfaceName"), "is required when expectedIPs is empty (set one or both)")
	}
	if s.InterfaceName != "" {
		checkInterface(&errs, p.Child("interfaceName"), s.InterfaceName, true)
	}
	for i, ip := range s.ExpectedIPs {
		checkIP(&errs, p.Child("expectedIPs").Index(i), ip, 0)
	}
	for i, pr := range s.Profiles {
		checkName(&errs, p.Child("profiles").Index(i), pr)
	}
	seen := map[string]bool{}
	for i, port := range s.Ports {
		pp := p.Child("ports").Index(i)
		checkPortName(&errs, pp.Child("name"), port.Name)
		if port.Name != "" && seen[port.Name] {
			errs.Invalid(pp.Child("name"), port.Name, "is used by another port")
		}
		seen[port.Name] = true
		validateEndpointPort(&errs, pp, port.Protocol, port.Port)
	}
	return errs
}

func validateEndpointPort(errs *ErrorList, pp Path, proto Protocol, port uint16) {
	switch {
	case proto.IsZero():
		errs.Required(pp.Child("protocol"))
	case !proto.Valid():
		validateProtocol(errs, pp.Child("protocol"), proto)
	case !proto.SupportsPorts():
		errs.Invalid(pp.Child("protocol"), proto.String(), "has no ports (use TCP, UDP or SCTP)")
	}
	if port == 0 {
		errs.Invalid(pp.Child("port"), 0, "is not a valid port (1-65535)")
	}
}

// WorkloadEndpoint is the network interface of a workload (a pod, a
// container, a VM): its addresses, its host-side interface and its labels.
type WorkloadEndpoint struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       WorkloadEndpointSpec `json:"spec,omitempty"`
}

// WorkloadEndpointSpec is the content of a WorkloadEndpoint. Node,
// Orchestrator, Workload (or Pod, for Kubernetes) and Endpoint identify it
// and make up its name (see WorkloadEndpointName).
type WorkloadEndpointSpec struct {
	Orchestrator string `json:"orchestrator,omitempty"`
	Workload     string `json:"workload,omitempty"`
	Node         string `json:"node,omitempty"`
	ContainerID  string `json:"containerID,omitempty"`
	Pod          string `json:"pod,omitempty"`
	Endpoint     string `json:"endpoint,omitempty"`
	// ServiceAccountName is the pod's service account, for rules that
	// match service accounts.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// IPNetworks are the workload's addresses, each a /32 or /128.
	IPNetworks []string `json:"ipNetworks,omitempty"`
	// IPNATs are 1:1 NAT mappings onto addresses in IPNetworks.
	IPNATs      []IPNAT `json:"ipNATs,omitempty"`
	IPv4Gateway string  `json:"ipv4Gateway,omitempty"`
	IPv6Gateway string  `json:"ipv6Gateway,omitempty"`
	// Profiles to apply, by name.
	Profiles []string `json:"profiles,omitempty"`
	// InterfaceName is the host side of the workload's veth.
	InterfaceName string `json:"interfaceName,omitempty"`
	MAC           string `json:"mac,omitempty"`
	// Ports are the workload's named ports (and host port mappings).
	Ports []WorkloadEndpointPort `json:"ports,omitempty"`
	// AllowSpoofedSourcePrefixes lists source prefixes the workload may
	// send from besides its own addresses.
	AllowSpoofedSourcePrefixes []string `json:"allowSpoofedSourcePrefixes,omitempty"`
}

// IPNAT maps an internal (workload) address to an external one.
type IPNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

// WorkloadEndpointPort is a named port of a workload, optionally mapped to
// a port of the host.
type WorkloadEndpointPort struct {
	Name     string   `json:"name,omitempty"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	HostPort uint16   `json:"hostPort,omitempty"`
	HostIP   string   `json:"hostIP,omitempty"`
}

// OrchestratorKubernetes is the orchestrator name of Kubernetes pods.
const OrchestratorKubernetes = "k8s"

// WorkloadEndpointName is the name Calico gives the endpoint with these
// identifiers: the four parts, each with "-" doubled, joined by "-"
// ("node1", "k8s", "my-pod", "eth0" give "node1-k8s-my--pod-eth0").
func WorkloadEndpointName(node, orchestrator, workload, endpoint string) string {
	esc := func(s string) string { return strings.ReplaceAll(s, "-", "--") }
	return esc(node) + "-" + esc(orchestrator) + "-" + esc(workload) + "-" + esc(endpoint)
}

// workloadID is the Workload identifier Calico uses in the name: the pod
// for Kubernetes, the workload otherwise.
func (s *WorkloadEndpointSpec) workloadID() string {
	if s.Orchestrator == OrchestratorKubernetes && s.Pod != "" {
		return s.Pod
	}
	if s.Workload != "" {
		return s.Workload
	}
	return s.Pod
}

// SetDefaults names the endpoint after its identifiers when it has no name.
func (w *WorkloadEndpoint) SetDefaults() {
	s := &w.Spec
	if w.Name == "" && s.Node != "" && s.Orchestrator != "" && s.workloadID() != "" && s.Endpoint != "" {
		w.Name = WorkloadEndpointName(s.Node, s.Orchestrator, s.workloadID(), s.Endpoint)
	}
}

// Validate checks the identifiers (and that the name matches them), the
// addresses, the interface and the ports.
func (w *WorkloadEndpoint) Validate() ErrorList {
	var errs ErrorList
	s := &w.Spec
	p := Path("spec")
	idsOK := true
	for _, f := range []struct{ name, value string }{{"node", s.Node}, {"orchestrator", s.Orchestrator}, {"endpoint", s.Endpoint}} {
		if f.value == "" {
			errs.Required(p.Child(f.name))
			idsOK = false
		}
	}
	if s.workloadID() == "" {
		field := "workload"
		if s.Orchestrator == OrchestratorKubernetes {
			field = "pod"
		}
		errs.Required(p.Child(field))
		idsOK = false
	}
	if s.Node != "" {
		checkName(&errs, p.Child("node"), s.Node)
	}
	if s.Pod != "" {
		checkName(&errs, p.Child("pod"), s.Pod)
	}
	if s.Endpoint != "" {
		checkName(&errs, p.Child("endpoint"), s.Endpoint)
	}
	if s.ContainerID != "" && !containerIDRE.MatchString(s.ContainerID) {
		errs.Invalid(p.Child("containerID"), s.ContainerID, "is not a valid container ID (letters, digits and '-')")
	}
	if idsOK && w.Name != "" {
		if want := WorkloadEndpointName(s.Node, s.Orchestrator, s.workloadID(), s.Endpoint); w.Name != want {
			errs.Invalid("metadata.name", w.Name, fmt.Sprintf("does not match the endpoint's identifiers (node, orchestrator, workload or pod, endpoint): expected %q", want))
		}
	}
	var nets []*net.IPNet
	for i, n := range s.IPNetworks {
		np := p.Child("ipNetworks").Index(i)
		_, ipn, err := parseCIDROrIP(n)
		if err != nil {
			errs.Invalid(np, n, "is not a valid IP address or CIDR")
			continue
		}
		if ones, bits := ipn.Mask.Size(); ones != bits {
			errs.Invalid(np, n, "holds more than one address (use a /32 or /128)")
		}
		nets = append(nets, ipn)
	}
	for i, nat := range s.IPNATs {
		np := p.Child("ipNATs").Index(i)
		in := net.ParseIP(nat.InternalIP)
		ex := net.ParseIP(nat.ExternalIP)
		if in == nil {
			errs.Invalid(np.Child("internalIP"), nat.InternalIP, "is not a valid IP address")
		}
		if ex == nil {
			errs.Invalid(np.Child("externalIP"), nat.ExternalIP, "is not a valid IP address")
		}
		if in != nil && ex != nil && ipVersion(in) != ipVersion(ex) {
			errs.Invalid(np.Child("externalIP"), nat.ExternalIP, "is not of the same IP version as internalIP")
		}
		if in != nil {
			inNets := false
			for _, n := range nets {
				inNets = inNets || n.Contains(in)
			}
			if !inNets {
				errs.Invalid(np.Child("internalIP"), nat.InternalIP, "is not one of the endpoint's ipNetworks")
			}
		}
	}
	if s.IPv4Gateway != "" {
		checkIP(&errs, p.Child("ipv4Gateway"), s.IPv4Gateway, 4)
	}
	if s.IPv6Gateway != "" {
		checkIP(&errs, p.Child("ipv6Gateway"), s.IPv6Gateway, 6)
	}
	for i, pr := range s.Profiles {
		checkName(&errs, p.Child("profiles").Index(i), pr)
	}
	if s.InterfaceName != "" {
		checkInterface(&errs, p.Child("interfaceName"), s.InterfaceName, false)
	}
	if s.MAC != "" {
		checkMAC(&errs, p.Child("mac"), s.MAC)
	}
	for i, port := range s.Ports {
		pp := p.Child("ports").Index(i)
		if port.Name != "" {
			checkPortName(&errs, pp.Child("name"), port.Name)
		} else if port.HostPort == 0 {
			errs.Add(pp.Child("name"), "is required unless hostPort is set")
		}
		validateEndpointPort(&errs, pp, port.Protocol, port.Port)
		if port.HostIP != "" {
			checkIP(&errs, pp.Child("hostIP"), port.HostIP, 0)
		}
	}
	for i, c := range s.AllowSpoofedSourcePrefixes {
		checkCIDR(&errs, p.Child("allowSpoofedSourcePrefixes").Index(i), c)
	}
	return errs
}
