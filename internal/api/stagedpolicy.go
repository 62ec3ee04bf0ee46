package api

// Staged policies, as Calico (3.30 and later) defines them: a policy
// staged for review, never enforced. Once promoted, a staged policy with
// stagedAction Set becomes (or replaces) the enforced policy of the same
// name, and one with stagedAction Delete removes it. `servalctl why
// --staged` shows what they would do.

// StagedAction says what promoting a staged policy does to the enforced
// policy of the same name.
type StagedAction string

const (
	StagedActionSet    StagedAction = "Set"    // create or replace it (the default)
	StagedActionDelete StagedAction = "Delete" // delete it
)

// StagedGlobalNetworkPolicy is a GlobalNetworkPolicy staged for review.
type StagedGlobalNetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StagedGlobalNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedGlobalNetworkPolicySpec is a GlobalNetworkPolicySpec and a
// stagedAction.
type StagedGlobalNetworkPolicySpec struct {
	StagedAction StagedAction `json:"stagedAction,omitempty"`
	GlobalNetworkPolicySpec
}

// StagedNetworkPolicy is a NetworkPolicy staged for review.
type StagedNetworkPolicy struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       StagedNetworkPolicySpec `json:"spec,omitempty"`
}

// StagedNetworkPolicySpec is a NetworkPolicySpec and a stagedAction.
type StagedNetworkPolicySpec struct {
	StagedAction StagedAction `json:"stagedAction,omitempty"`
	NetworkPolicySpec
}

func init() {
	Register(KindInfo{
		Kind:       "StagedGlobalNetworkPolicy",
		Plural:     "stagedglobalnetworkpolicies",
		ShortNames: []string{"stagedglobalnetworkpolicy", "sgnp", "sgnps"},
		New:        func() Resource { return &StagedGlobalNetworkPolicy{} },
	})
	Register(KindInfo{
		Kind:       "StagedNetworkPolicy",
		Plural:     "stagednetworkpolicies",
		ShortNames: []string{"stagednetworkpolicy", "snp", "snps"},
		Namespaced: true,
		New:        func() Resource { return &StagedNetworkPolicy{} },
	})
}

// SetDefaults: stagedAction Set; a staged Set is defaulted as the policy
// it would become. A staged Delete keeps its spec as given.
func (s *StagedGlobalNetworkPolicy) SetDefaults() {
	if s.Spec.StagedAction == "" {
		s.Spec.StagedAction = StagedActionSet
	}
	if s.Spec.StagedAction == StagedActionSet {
		g := s.Enforced()
		g.SetDefaults()
		s.Spec.GlobalNetworkPolicySpec = g.Spec
	}
}

// Validate checks the stagedAction, and for Set the policy it would become.
func (s *StagedGlobalNetworkPolicy) Validate() ErrorList {
	var errs ErrorList
	switch s.Spec.StagedAction {
	case StagedActionSet:
		// What the policy would be refuses what it would refuse: a staged
		// policy previews only what Serval could enforce.
		g := s.Enforced()
		errs = g.Validate()
		refuseUnsupported(&errs, g)
	case StagedActionDelete:
		checkPolicyName(&errs, s.Name, globalNetworkPolicyNameRE)
	default:
		errs.Invalid(Path("spec").Child("stagedAction"), string(s.Spec.StagedAction), "is not one of Set, Delete")
	}
	return errs
}

// Enforced is the GlobalNetworkPolicy the staged policy stands for.
func (s *StagedGlobalNetworkPolicy) Enforced() *GlobalNetworkPolicy {
	g := &GlobalNetworkPolicy{TypeMeta: TypeMeta{Kind: "GlobalNetworkPolicy", APIVersion: APIVersion}, Spec: s.Spec.GlobalNetworkPolicySpec}
	g.Name, g.Labels, g.Annotations = s.Name, s.Labels, s.Annotations
	return g
}

// SetDefaults: as for StagedGlobalNetworkPolicy.
func (s *StagedNetworkPolicy) SetDefaults() {
	if s.Spec.StagedAction == "" {
		s.Spec.StagedAction = StagedActionSet
	}
	if s.Spec.StagedAction == StagedActionSet {
		np := s.Enforced()
		np.SetDefaults()
		s.Spec.NetworkPolicySpec = np.Spec
	}
}

// Validate checks the stagedAction, and for Set the policy it would become.
func (s *StagedNetworkPolicy) Validate() ErrorList {
	var errs ErrorList
	switch s.Spec.StagedAction {
	case StagedActionSet:
		np := s.Enforced()
		errs = np.Validate()
		refuseUnsupported(&errs, np)
	case StagedActionDelete:
		checkPolicyName(&errs, s.Name, networkPolicyNameRE)
	default:
		errs.Invalid(Path("spec").Child("stagedAction"), string(s.Spec.StagedAction), "is not one of Set, Delete")
	}
	return errs
}

// Enforced is the NetworkPolicy the staged policy stands for.
func (s *StagedNetworkPolicy) Enforced() *NetworkPolicy {
	np := &NetworkPolicy{TypeMeta: TypeMeta{Kind: "NetworkPolicy", APIVersion: APIVersion}, Spec: s.Spec.NetworkPolicySpec}
	np.Name, np.Namespace, np.Labels, np.Annotations = s.Name, s.Namespace, s.Labels, s.Annotations
	return np
}
