package api

// NetworkPolicy is an ordered set of rules applied to the workload
// endpoints of one namespace that its selector picks.
type NetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       NetworkPolicySpec `json:"spec,omitempty"`
}

// NetworkPolicySpec is the content of a NetworkPolicy.
type NetworkPolicySpec struct {
	// Tier the policy belongs to; "default" when unset.
	Tier string `json:"tier,omitempty"`
	// Order within the tier: lower first; unset is last ("infinite").
	// Policies of equal order go by name.
	Order   *float64 `json:"order,omitempty"`
	Ingress []Rule   `json:"ingress,omitempty"`
	Egress  []Rule   `json:"egress,omitempty"`
	// Selector picks the endpoints the policy applies to; "" is all().
	Selector string `json:"selector,omitempty"`
	// Types are the directions the policy applies to. Unset, they are
	// inferred from the rules present (see SetDefaults).
	Types                  []PolicyType            `json:"types,omitempty"`
	ServiceAccountSelector string                  `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []PolicyPerformanceHint `json:"performanceHints,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "NetworkPolicy",
		Plural:     "networkpolicies",
		ShortNames: []string{"networkpolicy", "policy", "policies", "np", "nps", "pol", "pols", "cnp", "caliconetworkpolicy", "caliconetworkpolicies"},
		Namespaced: true,
		New:        func() Resource { return &NetworkPolicy{} },
	})
}

// SetDefaults puts the policy in the default tier when it names none and
// infers its types from its rules when none are given.
func (np *NetworkPolicy) SetDefaults() {
	if np.Spec.Tier == "" {
		np.Spec.Tier = DefaultTierName
	}
	if len(np.Spec.Types) == 0 {
		np.Spec.Types = defaultPolicyTypes(np.Spec.Ingress, np.Spec.Egress)
	}
}

// Validate checks the name and the spec.
func (np *NetworkPolicy) Validate() ErrorList {
	var errs ErrorList
	checkPolicyName(&errs, np.Name, networkPolicyNameRE)
	s := &np.Spec
	validatePolicyCommon(&errs, s.Tier, s.Ingress, s.Egress, s.Selector, s.ServiceAccountSelector, s.Types, s.PerformanceHints)
	return errs
}
