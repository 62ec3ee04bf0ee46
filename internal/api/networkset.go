package api

// NetworkSet is a named, labelled set of networks in one namespace, which
// rule selectors can pick like endpoints.
type NetworkSet struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       NetworkSetSpec `json:"spec,omitempty"`
}

// NetworkSetSpec is the content of a NetworkSet or GlobalNetworkSet.
type NetworkSetSpec struct {
	// Nets are addresses or CIDRs (host bits may be set), IPv4 or IPv6.
	Nets []string `json:"nets,omitempty"`
}

// GlobalNetworkSet is a NetworkSet that is not bound to a namespace.
type GlobalNetworkSet struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       GlobalNetworkSetSpec `json:"spec,omitempty"`
}

// GlobalNetworkSetSpec is the content of a GlobalNetworkSet.
type GlobalNetworkSetSpec = NetworkSetSpec

func init() {
	Register(KindInfo{
		Kind:       "NetworkSet",
		Plural:     "networksets",
		ShortNames: []string{"networkset", "netset", "netsets"},
		Namespaced: true,
		New:        func() Resource { return &NetworkSet{} },
	})
	Register(KindInfo{
		Kind:       "GlobalNetworkSet",
		Plural:     "globalnetworksets",
		ShortNames: []string{"globalnetworkset", "gns", "globalnetset", "globalnetsets"},
		New:        func() Resource { return &GlobalNetworkSet{} },
	})
}

// SetDefaults sets nothing.
func (n *NetworkSet) SetDefaults() {}

// SetDefaults sets nothing.
func (n *GlobalNetworkSet) SetDefaults() {}

func validateNets(errs *ErrorList, nets []string, labels map[string]string) {
	for i, n := range nets {
		checkCIDR(errs, Path("spec.nets").Index(i), n)
	}
	forbidNamespaceLabel(errs, labels)
}

// Validate checks the networks and the reserved label.
func (n *NetworkSet) Validate() ErrorList {
	var errs ErrorList
	validateNets(&errs, n.Spec.Nets, n.Labels)
	return errs
}

// Validate checks the networks and the reserved label.
func (n *GlobalNetworkSet) Validate() ErrorList {
	var errs ErrorList
	validateNets(&errs, n.Spec.Nets, n.Labels)
	return errs
}
