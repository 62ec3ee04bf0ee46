package api

// Profile is a set of rules and labels shared by endpoints that name it.
// Profiles are evaluated after every tier; a namespace's or service
// account's profile carries its labels to the endpoints in it.
type Profile struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       ProfileSpec `json:"spec,omitempty"`
}

// ProfileSpec is the content of a Profile.
type ProfileSpec struct {
	Ingress []Rule `json:"ingress,omitempty"`
	Egress  []Rule `json:"egress,omitempty"`
	// LabelsToApply are added to the labels of every endpoint using the
	// profile (the endpoint's own labels win).
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "Profile",
		Plural:     "profiles",
		ShortNames: []string{"profile", "pro", "pros"},
		New:        func() Resource { return &Profile{} },
	})
}

// SetDefaults sets nothing.
func (pr *Profile) SetDefaults() {}

// Validate checks the rules and the labels to apply.
func (pr *Profile) Validate() ErrorList {
	var errs ErrorList
	validateRules(&errs, "spec.ingress", pr.Spec.Ingress, PolicyTypeIngress, false)
	validateRules(&errs, "spec.egress", pr.Spec.Egress, PolicyTypeEgress, false)
	checkLabelMap(&errs, "spec.labelsToApply", pr.Spec.LabelsToApply)
	return errs
}
