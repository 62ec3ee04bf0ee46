package api

// GlobalNetworkPolicy is a NetworkPolicy that is not bound to a namespace:
// its selector picks workload endpoints of every namespace and host
// endpoints, and it can act before connection tracking (doNotTrack) or
// before DNAT (preDNAT).
type GlobalNetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       GlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// GlobalNetworkPolicySpec is the content of a GlobalNetworkPolicy.
type GlobalNetworkPolicySpec struct {
	Tier     string       `json:"tier,omitempty"`
	Order    *float64     `json:"order,omitempty"`
	Ingress  []Rule       `json:"ingress,omitempty"`
	Egress   []Rule       `json:"egress,omitempty"`
	Selector string       `json:"selector,omitempty"`
	Types    []PolicyType `json:"types,omitempty"`
	// DoNotTrack applies the rules before connection tracking and exempts
	// the packets they allow from it. Needs ApplyOnForward.
	DoNotTrack bool `json:"doNotTrack,omitempty"`
	// PreDNAT applies the (ingress) rules before DNAT. Needs ApplyOnForward.
	PreDNAT bool `json:"preDNAT,omitempty"`
	// ApplyOnForward also applies the policy to traffic a host forwards.
	ApplyOnForward         bool                    `json:"applyOnForward,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string                  `json:"namespaceSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "GlobalNetworkPolicy",
		Plural:     "globalnetworkpolicies",
		ShortNames: []string{"globalnetworkpolicy", "gnp", "gnps", "cgnp", "calicoglobalnetworkpolicy", "calicoglobalnetworkpolicies"},
		New:        func() Resource { return &GlobalNetworkPolicy{} },
	})
}

// SetDefaults puts the policy in the default tier when it names none and
// infers its types from its rules when none are given (a preDNAT or
// doNotTrack policy is inferred the same way).
func (g *GlobalNetworkPolicy) SetDefaults() {
	if g.Spec.Tier == "" {
		g.Spec.Tier = DefaultTierName
	}
	if len(g.Spec.Types) == 0 {
		g.Spec.Types = defaultPolicyTypes(g.Spec.Ingress, g.Spec.Egress)
	}
}

// Validate checks the name and the spec.
func (g *GlobalNetworkPolicy) Validate() ErrorList {
	var errs ErrorList
	checkPolicyName(&errs, g.Name, globalNetworkPolicyNameRE)
	s := &g.Spec
	p := Path("spec")
	validatePolicyCommon(&errs, s.Tier, s.Ingress, s.Egress, s.Selector, s.ServiceAccountSelector, s.Types, s.PerformanceHints)
	checkSelector(&errs, p.Child("namespaceSelector"), s.NamespaceSelector)
	checkNoGlobal(&errs, p.Child("namespaceSelector"), s.NamespaceSelector)
	if s.DoNotTrack && s.PreDNAT {
		errs.Add(p.Child("preDNAT"), "must not be true together with doNotTrack")
	}
	if s.PreDNAT && len(s.Egress) > 0 {
		errs.Add(p.Child("egress"), "must be empty in a preDNAT policy")
	}
	if s.PreDNAT {
		for i, t := range s.Types {
			if t == PolicyTypeEgress {
				errs.Invalid(p.Child("types").Index(i), string(t), "is not allowed in a preDNAT policy")
			}
		}
	}
	if (s.DoNotTrack || s.PreDNAT) && !s.ApplyOnForward {
		errs.Add(p.Child("applyOnForward"), "must be true when preDNAT or doNotTrack is true")
	}
	// Service names are namespaced: a global policy must say which namespace.
	for i, r := range s.Egress {
		if r.Destination.Services != nil && r.Destination.Services.Namespace == "" {
			errs.Required(p.Child("egress").Index(i).Child("destination").Child("services").Child("namespace"))
		}
	}
	for i, r := range s.Ingress {
		if r.Source.Services != nil && r.Source.Services.Namespace == "" {
			errs.Required(p.Child("ingress").Index(i).Child("source").Child("services").Child("namespace"))
		}
	}
	return errs
}
