package api

// Tier is an ordered group of policies. Tiers are evaluated by order
// (lowest first); within a tier, policies by order. A Pass action moves on
// to the next tier; a packet that no policy in a tier that applies to the
// endpoint acts on gets the tier's defaultAction.
type Tier struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       TierSpec `json:"spec,omitempty"`
}

// TierSpec is the content of a Tier.
type TierSpec struct {
	// Order of the tier: lower first; unset is last.
	Order *float64 `json:"order,omitempty"`
	// DefaultAction is Deny (the default) or Pass.
	DefaultAction *Action `json:"defaultAction,omitempty"`
}

// Orders Calico fixes for its built-in tiers.
const (
	DefaultTierOrder                    = 1_000_000
	AdminNetworkPolicyTierName          = "adminnetworkpolicy"
	AdminNetworkPolicyTierOrder         = 1_000
	BaselineAdminNetworkPolicyTierName  = "baselineadminnetworkpolicy"
	BaselineAdminNetworkPolicyTierOrder = 10_000_000
	// The tiers of Kubernetes ClusterNetworkPolicy (Calico 3.31+): its
	// Admin tier before every other, its Baseline tier after the default
	// tier; both have the default action Pass.
	KubeAdminTierName     = "kube-admin"
	KubeAdminTierOrder    = 1_000
	KubeBaselineTierName  = "kube-baseline"
	KubeBaselineTierOrder = 10_000_000
)

var fixedTierOrders = map[string]float64{
	DefaultTierName:                    DefaultTierOrder,
	AdminNetworkPolicyTierName:         AdminNetworkPolicyTierOrder,
	BaselineAdminNetworkPolicyTierName: BaselineAdminNetworkPolicyTierOrder,
	KubeAdminTierName:                  KubeAdminTierOrder,
	KubeBaselineTierName:               KubeBaselineTierOrder,
}

func init() {
	Register(KindInfo{
		Kind:       "Tier",
		Plural:     "tiers",
		ShortNames: []string{"tier"},
		New:        func() Resource { return &Tier{} },
	})
}

// SetDefaults gives the built-in tiers their fixed order and every tier the
// default action Deny.
func (t *Tier) SetDefaults() {
	if t.Spec.Order == nil {
		if o, ok := fixedTierOrders[t.Name]; ok {
			t.Spec.Order = ptr(o)
		}
	}
	if t.Spec.DefaultAction == nil {
		t.Spec.DefaultAction = ptr(Deny)
	}
}

// Validate checks the name (a DNS label: tier names appear inside other
// names), the fixed orders of the built-in tiers and the default action.
func (t *Tier) Validate() ErrorList {
	var errs ErrorList
	if t.Name != "" && CheckDNS1123Subdomain(t.Name) == "" {
		if msg := CheckDNS1123Label(t.Name); msg != "" {
			errs.Invalid("metadata.name", t.Name, "is not a valid tier name: "+msg+" (no '.')")
		}
	}
	if o, ok := fixedTierOrders[t.Name]; ok && (t.Spec.Order == nil || *t.Spec.Order != o) {
		got := "unset"
		if t.Spec.Order != nil {
			got = formatFloat(*t.Spec.Order)
		}
		errs.Invalid("spec.order", got, "is not allowed: the "+t.Name+" tier's order must be "+formatFloat(o))
	}
	if a := t.Spec.DefaultAction; a != nil && *a != Deny && *a != Pass {
		errs.Invalid("spec.defaultAction", string(*a), "is not a valid default action (Deny, Pass)")
	}
	return errs
}
