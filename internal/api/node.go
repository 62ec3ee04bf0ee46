package api

// Node is a host of the cluster as the network sees it: its addresses, its
// BGP identity and its tunnel addresses. Each serval-node registers its own.
type Node struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       NodeSpec   `json:"spec,omitempty"`
	Status     NodeStatus `json:"status,omitzero"`
}

// NodeSpec is the configuration of a Node.
type NodeSpec struct {
	// BGP, when set, makes the node a BGP speaker with these addresses.
	BGP *NodeBGPSpec `json:"bgp,omitempty"`
	// Addresses of the node, each with where it came from.
	Addresses []NodeAddress `json:"addresses,omitempty"`
	// VXLAN tunnel device addresses and MACs, set by IPAM and the agent.
	IPv4VXLANTunnelAddr  string `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   string `json:"vxlanTunnelMACAddr,omitempty"`
	IPv6VXLANTunnelAddr  string `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 string `json:"vxlanTunnelMACAddrV6,omitempty"`
	// OrchRefs names the node in each orchestrator.
	OrchRefs []OrchRef `json:"orchRefs,omitempty"`
	// Wireguard holds the node's WireGuard interface addresses.
	Wireguard *NodeWireguardSpec `json:"wireguard,omitempty"`
}

// NodeBGPSpec is a node's BGP identity.
type NodeBGPSpec struct {
	// ASNumber overrides the cluster's default AS for this node.
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// IPv4Address and IPv6Address are the node's address with its subnet
	// ("10.0.0.5/24"); the subnet decides what "CrossSubnet" means.
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
	// IPv4IPIPTunnelAddr is the address of the node's IP-in-IP device.
	IPv4IPIPTunnelAddr string `json:"ipv4IPIPTunnelAddr,omitempty"`
	// RouteReflectorClusterID, an IPv4 address, makes the node a route
	// reflector of that cluster.
	RouteReflectorClusterID string `json:"routeReflectorClusterID,omitempty"`
}

// NodeAddress is one address of a node.
type NodeAddress struct {
	Address string `json:"address"`
	// Type: CalicoNodeIP, InternalIP or ExternalIP.
	Type string `json:"type,omitempty"`
}

// OrchRef names a node in an orchestrator.
type OrchRef struct {
	NodeName     string `json:"nodeName,omitempty"`
	Orchestrator string `json:"orchestrator"`
}

// NodeWireguardSpec holds WireGuard interface addresses.
type NodeWireguardSpec struct {
	InterfaceIPv4Address string `json:"interfaceIPv4Address,omitempty"`
	InterfaceIPv6Address string `json:"interfaceIPv6Address,omitempty"`
}

// NodeStatus is what the node reports about itself.
type NodeStatus struct {
	WireguardPublicKey   string   `json:"wireguardPublicKey,omitempty"`
	WireguardPublicKeyV6 string   `json:"wireguardPublicKeyV6,omitempty"`
	PodCIDRs             []string `json:"podCIDRs,omitempty"`
}

// IsZero lets an empty status be left out when printing.
func (s NodeStatus) IsZero() bool {
	return s.WireguardPublicKey == "" && s.WireguardPublicKeyV6 == "" && len(s.PodCIDRs) == 0
}

func init() {
	Register(KindInfo{
		Kind:       "Node",
		Plural:     "nodes",
		ShortNames: []string{"node", "no", "nos"},
		New:        func() Resource { return &Node{} },
	})
}

// SetDefaults sets nothing: a node's fields are facts about the host.
func (n *Node) SetDefaults() {}

// Validate checks every address.
func (n *Node) Validate() ErrorList {
	var errs ErrorList
	s := &n.Spec
	p := Path("spec")
	if b := s.BGP; b != nil {
		bp := p.Child("bgp")
		if *b == (NodeBGPSpec{}) {
			errs.Add(bp, "must not be empty (leave it out instead)")
		}
		validateASNumber(&errs, bp.Child("asNumber"), b.ASNumber)
		if b.IPv4Address != "" {
			checkCIDRFamily(&errs, bp.Child("ipv4Address"), b.IPv4Address, 4)
		}
		if b.IPv6Address != "" {
			checkCIDRFamily(&errs, bp.Child("ipv6Address"), b.IPv6Address, 6)
		}
		if b.IPv4IPIPTunnelAddr != "" {
			checkIP(&errs, bp.Child("ipv4IPIPTunnelAddr"), b.IPv4IPIPTunnelAddr, 4)
		}
		if b.RouteReflectorClusterID != "" {
			checkIP(&errs, bp.Child("routeReflectorClusterID"), b.RouteReflectorClusterID, 4)
		}
	}
	for i, a := range s.Addresses {
		ap := p.Child("addresses").Index(i)
		if a.Address == "" {
			errs.Required(ap.Child("address"))
		} else {
			checkCIDR(&errs, ap.Child("address"), a.Address)
		}
		if a.Type != "" {
			checkEnum(&errs, ap.Child("type"), a.Type, "CalicoNodeIP", "InternalIP", "ExternalIP")
		}
	}
	if s.IPv4VXLANTunnelAddr != "" {
		checkIP(&errs, p.Child("ipv4VXLANTunnelAddr"), s.IPv4VXLANTunnelAddr, 4)
	}
	if s.IPv6VXLANTunnelAddr != "" {
		checkIP(&errs, p.Child("ipv6VXLANTunnelAddr"), s.IPv6VXLANTunnelAddr, 6)
	}
	if s.VXLANTunnelMACAddr != "" {
		checkMAC(&errs, p.Child("vxlanTunnelMACAddr"), s.VXLANTunnelMACAddr)
	}
	if s.VXLANTunnelMACAddrV6 != "" {
		checkMAC(&errs, p.Child("vxlanTunnelMACAddrV6"), s.VXLANTunnelMACAddrV6)
	}
	for i, o := range s.OrchRefs {
		if o.Orchestrator == "" {
			errs.Required(p.Child("orchRefs").Index(i).Child("orchestrator"))
		}
	}
	if w := s.Wireguard; w != nil {
		if w.InterfaceIPv4Address != "" {
			checkIP(&errs, p.Child("wireguard").Child("interfaceIPv4Address"), w.InterfaceIPv4Address, 4)
		}
		if w.InterfaceIPv6Address != "" {
			checkIP(&errs, p.Child("wireguard").Child("interfaceIPv6Address"), w.InterfaceIPv6Address, 6)
		}
	}
	st := Path("status")
	if n.Status.WireguardPublicKey != "" {
		checkWireguardKey(&errs, st.Child("wireguardPublicKey"), n.Status.WireguardPublicKey)
	}
	if n.Status.WireguardPublicKeyV6 != "" {
		checkWireguardKey(&errs, st.Child("wireguardPublicKeyV6"), n.Status.WireguardPublicKeyV6)
	}
	for i, c := range n.Status.PodCIDRs {
		checkCIDR(&errs, st.Child("podCIDRs").Index(i), c)
	}
	return errs
}
