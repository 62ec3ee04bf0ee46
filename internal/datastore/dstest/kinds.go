package dstest

import (
	"github.com/servalnet/serval/internal/api"
)

// Kinds of the conformance suite. They are registered with api when this
// package is linked, which only tests do; they keep the suite independent
// of the real kinds and of their validation rules.
const (
	ThingKind   = "TestThing"   // cluster-scoped, plural "testthings"
	NSThingKind = "TestNSThing" // namespaced, plural "testnsthings"
)

// ThingSpec is the spec of both test kinds.
type ThingSpec struct {
	Node string `json:"node,omitempty"`
	// Mode defaults to "Auto"; "Auto", "Always" and "Never" are valid.
	Mode  string   `json:"mode,omitempty"`
	Count int      `json:"count,omitempty"` // must not be negative
	Tags  []string `json:"tags,omitempty"`
}

// Thing is the cluster-scoped test kind.
type Thing struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Spec           ThingSpec `json:"spec"`
}

// NSThing is the namespaced test kind.
type NSThing struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Spec           ThingSpec `json:"spec"`
}

func (t *Thing) SetDefaults()              { t.Spec.setDefaults() }
func (t *Thing) Validate() api.ErrorList   { return t.Spec.validate() }
func (t *NSThing) SetDefaults()            { t.Spec.setDefaults() }
func (t *NSThing) Validate() api.ErrorList { return t.Spec.validate() }

func (s *ThingSpec) setDefaults() {
	if s.Mode == "" {
		s.Mode = "Auto"
	}
}

func (s *ThingSpec) validate() api.ErrorList {
	var errs api.ErrorList
	p := api.Path("spec")
	switch s.Mode {
	case "Auto", "Always", "Never":
	default:
		errs.Invalid(p.Child("mode"), s.Mode, "is not a valid mode (Auto, Always, Never)")
	}
	if s.Count < 0 {
		errs.Invalid(p.Child("count"), s.Count, "must not be negative")
	}
	return errs
}

func init() {
	api.Register(api.KindInfo{Kind: ThingKind, Plural: "testthings", New: func() api.Resource { return &Thing{} }})
	api.Register(api.KindInfo{Kind: NSThingKind, Plural: "testnsthings", Namespaced: true, New: func() api.Resource { return &NSThing{} }})
}

// NewThing returns a cluster-scoped test resource.
func NewThing(name string, labels map[string]string, spec ThingSpec) *Thing {
	return &Thing{
		TypeMeta:   api.TypeMeta{Kind: ThingKind, APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: name, Labels: labels},
		Spec:       spec,
	}
}

// NewNSThing returns a namespaced test resource.
func NewNSThing(namespace, name string, labels map[string]string, spec ThingSpec) *NSThing {
	return &NSThing{
		TypeMeta:   api.TypeMeta{Kind: NSThingKind, APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec:       spec,
	}
}
