package kube

// Pod and namespace annotations Calico's CNI plugin and Kubernetes
// datastore use; Serval reads and writes the same ones so that a cluster
// can move between the two.
const (
	// AnnotationPodIP and AnnotationPodIPs are written by the CNI plugin
	// on ADD: the pod's first address and all of them, comma-separated,
	// as CIDRs (10.0.0.1/32). The WorkloadEndpoint derived from the pod
	// takes its addresses from them.
	AnnotationPodIP  = "cni.projectcalico.org/podIP"
	AnnotationPodIPs = "cni.projectcalico.org/podIPs"
	// AnnotationContainerID is the container (sandbox) whose ADD wrote
	// the addresses; a DEL of another container leaves them alone.
	AnnotationContainerID = "cni.projectcalico.org/containerID"
	// AnnotationIPAddrs asks for specific addresses: a JSON list.
	AnnotationIPAddrs = "cni.projectcalico.org/ipAddrs"
	// AnnotationIPv4Pools and AnnotationIPv6Pools restrict allocation to
	// pools, by name or CIDR: JSON lists, on the pod or its namespace.
	AnnotationIPv4Pools = "cni.projectcalico.org/ipv4pools"
	AnnotationIPv6Pools = "cni.projectcalico.org/ipv6pools"
	// AnnotationIPAddrsNoIPAM and AnnotationFloatingIPs are Calico
	// annotations Serval's CNI plugin does not honour; a pod that has
	// them is refused rather than attached without them.
	AnnotationIPAddrsNoIPAM = "cni.projectcalico.org/ipAddrsNoIpam"
	AnnotationFloatingIPs   = "cni.projectcalico.org/floatingIPs"
)
