package cni

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/netconst"
)

// Orchestrator names written into WorkloadEndpoints.
const (
	OrchestratorCNI = "cni"
	OrchestratorK8s = api.OrchestratorKubernetes
)

// LabelArgPrefix marks a CNI_ARGS key that is a label for the workload:
// "label.app=web" gives the endpoint the label app=web.
const LabelArgPrefix = "label."

// Labels Serval (like Calico) puts on every endpoint so that selectors
// can match the namespace and orchestrator.
const (
	LabelNamespace    = "projectcalico.org/namespace"
	LabelOrchestrator = "projectcalico.org/orchestrator"
)

// DefaultNamespace holds the endpoints of runtimes that have no
// namespaces.
const DefaultNamespace = "default"

// Args are the CNI_ARGS this plugin understands. Other keys are ignored,
// as kubelet and other runtimes pass keys of their own.
type Args struct {
	PodNamespace string // K8S_POD_NAMESPACE
	PodName      string // K8S_POD_NAME
	PodUID       string // K8S_POD_UID (kubelet passes it)
	// IP asks for specific addresses (comma-separated), as Calico's IP arg.
	IPs []netip.Addr
	// Labels from "label.<key>=<value>" arguments.
	Labels map[string]string
}

// ParseArgs parses CNI_ARGS ("K1=V1;K2=V2"). Errors name the argument.
func ParseArgs(s string) (*Args, error) {
	a := &Args{}
	if s == "" {
		return a, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("CNI_ARGS: %q is not KEY=VALUE", kv)
		}
		switch {
		case k == "K8S_POD_NAMESPACE":
			a.PodNamespace = v
		case k == "K8S_POD_NAME":
			a.PodName = v
		case k == "K8S_POD_UID":
			a.PodUID = v
		case k == "IP":
			for _, s := range strings.Split(v, ",") {
				ip, err := netip.ParseAddr(strings.TrimSpace(s))
				if err != nil {
					return nil, fmt.Errorf("CNI_ARGS: IP: %q is not an IP address", s)
				}
				a.IPs = append(a.IPs, ip)
			}
		case strings.HasPrefix(k, LabelArgPrefix):
			if a.Labels == nil {
				a.Labels = map[string]string{}
			}
			a.Labels[strings.TrimPrefix(k, LabelArgPrefix)] = v
		}
	}
	var errs api.ErrorList
	api.ValidateLabels(&errs, "CNI_ARGS", a.Labels)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", errs[0].Error())
	}
	if a.PodName != "" {
		if msg := api.CheckDNS1123Subdomain(a.PodName); msg != "" {
			return nil, fmt.Errorf("CNI_ARGS: K8S_POD_NAME %q is not a valid pod name: %s", a.PodName, msg)
		}
	}
	if a.PodNamespace != "" {
		if msg := api.CheckDNS1123Label(a.PodNamespace); msg != "" {
			return nil, fmt.Errorf("CNI_ARGS: K8S_POD_NAMESPACE %q is not a valid namespace: %s", a.PodNamespace, msg)
		}
	}
	return a, nil
}

// Identity is who a CNI call is about, derived the same way by both
// plugins and by every command (ADD, DEL and CHECK must agree).
type Identity struct {
	Node         string
	Orchestrator string // "k8s" when CNI_ARGS name a pod, else "cni"
	Namespace    string // the pod's namespace, or DefaultNamespace
	Workload     string // the pod name, or the container ID
	Pod          string // the pod name for k8s
	PodUID       string // the pod's UID, when the runtime passes it
	ContainerID  string
	IfName       string // CNI_IFNAME: the endpoint
	// Handle is the IPAM handle: network name + "." + container ID, as
	// Calico. One per attachment, so a retried ADD or a late DEL of the
	// same container finds its addresses.
	Handle string
	// EndpointName is the WorkloadEndpoint's name.
	EndpointName string
	// HostVeth is the host side of the workload's veth.
	HostVeth string
}

// NewIdentity derives the identity of an attachment.
func NewIdentity(conf *NetConf, node, containerID, ifName string, args *Args) *Identity {
	id := &Identity{
		Node:         node,
		Orchestrator: OrchestratorCNI,
		Namespace:    DefaultNamespace,
		Workload:     containerID,
		ContainerID:  containerID,
		IfName:       ifName,
		Handle:       conf.Name + "." + containerID,
	}
	// The veth name hashes what outlives a container restart where there
	// is such a thing (the pod), as Calico does, so the node agent can
	// compute it from the endpoint alone.
	key := containerID
	if args.PodName != "" {
		id.Orchestrator = OrchestratorK8s
		id.Pod = args.PodName
		id.PodUID = args.PodUID
		id.Workload = args.PodName
		if args.PodNamespace != "" {
			id.Namespace = args.PodNamespace
		}
		key = id.Namespace + "." + args.PodName
	}
	// A second interface of the same workload (Multus and the like) needs
	// a veth of its own; eth0 keeps Calico's name.
	if ifName != "" && ifName != "eth0" {
		key += "." + ifName
	}
	id.HostVeth = VethName(conf.VethPrefix(), key)
	id.EndpointName = api.WorkloadEndpointName(node, id.Orchestrator, id.Workload, ifName)
	return id
}

// VethName is prefix + the first 11 hex digits of the SHA-1 of key: at
// most 15 characters, the kernel's limit. With key "namespace.pod" it is
// the name Calico gives the pod's veth.
func VethName(prefix, key string) string { return netconst.VethName(prefix, key) }

// IPAMAttrs are the attributes stored with the addresses, so that
// `servalctl ipam show` can say who holds one.
// The pod's UID lets serval-controllers tell a pod from a successor of
// the same name.
func (id *Identity) IPAMAttrs() map[string]string {
	attrs := map[string]string{
		ipam.AttrNode:      id.Node,
		ipam.AttrNamespace: id.Namespace,
		ipam.AttrWorkload:  id.Workload,
		ipam.AttrEndpoint:  id.EndpointName,
	}
	if id.PodUID != "" {
		attrs[ipam.AttrPodUID] = id.PodUID
	}
	return attrs
}

// Endpoint builds the WorkloadEndpoint of the attachment, without
// addresses and MACs. Labels are merged in increasing precedence: the
// network configuration, runtimeConfig, CNI_ARGS, then Serval's own
// namespace and orchestrator labels; profiles are the union, in order.
func (id *Identity) Endpoint(conf *NetConf, args *Args) *api.WorkloadEndpoint {
	labels := map[string]string{}
	for _, m := range []map[string]string{conf.Labels, conf.RuntimeConfig.Labels, args.Labels} {
		for k, v := range m {
			labels[k] = v
		}
	}
	labels[LabelNamespace] = id.Namespace
	labels[LabelOrchestrator] = id.Orchestrator
	var profiles []string
	seen := map[string]bool{}
	add := func(ps ...string) {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				profiles = append(profiles, p)
			}
		}
	}
	if id.Orchestrator == OrchestratorK8s {
		// Calico gives every pod the profile of its namespace.
		add("kns." + id.Namespace)
	}
	add(conf.Profiles...)
	add(conf.RuntimeConfig.Profiles...)
	w := &api.WorkloadEndpoint{
		TypeMeta:   api.TypeMeta{Kind: "WorkloadEndpoint", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: id.EndpointName, Namespace: id.Namespace, Labels: labels},
		Spec: api.WorkloadEndpointSpec{
			Orchestrator:  id.Orchestrator,
			Workload:      id.Workload,
			Node:          id.Node,
			ContainerID:   id.ContainerID,
			Pod:           id.Pod,
			Endpoint:      id.IfName,
			Profiles:      profiles,
			InterfaceName: id.HostVeth,
		},
	}
	return w
}

// sortedAddrs returns the addresses sorted, IPv4 first.
func sortedAddrs(ips []netip.Addr) []netip.Addr {
	out := append([]netip.Addr(nil), ips...)
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
