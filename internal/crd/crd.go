package crd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/servalnet/serval/internal/api"
)

// Group and Version of every kind, as CRDs: those of internal/api.
const (
	Group   = api.Group
	Version = api.Version
)

// CustomResourceDefinition is apiextensions.k8s.io/v1
// CustomResourceDefinition, with only the fields Serval sets. It marshals to
// the JSON (or YAML) the API server reads.
type CustomResourceDefinition struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata is the part of ObjectMeta a CRD needs.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Spec is CustomResourceDefinitionSpec.
type Spec struct {
	Group    string        `json:"group"`
	Names    Names         `json:"names"`
	Scope    string        `json:"scope"` // "Namespaced" or "Cluster"
	Versions []VersionSpec `json:"versions"`
}

// Names is CustomResourceDefinitionNames.
type Names struct {
	Kind       string   `json:"kind"`
	ListKind   string   `json:"listKind"`
	Plural     string   `json:"plural"`
	Singular   string   `json:"singular"`
	ShortNames []string `json:"shortNames,omitempty"`
}

// VersionSpec is CustomResourceDefinitionVersion.
type VersionSpec struct {
	Name         string        `json:"name"`
	Served       bool          `json:"served"`
	Storage      bool          `json:"storage"`
	Schema       Validation    `json:"schema"`
	Subresources *Subresources `json:"subresources,omitempty"`
}

// Validation is CustomResourceValidation.
type Validation struct {
	OpenAPIV3Schema *Schema `json:"openAPIV3Schema"`
}

// Subresources is CustomResourceSubresources; only status is used.
type Subresources struct {
	Status *struct{} `json:"status,omitempty"`
}

// Schema is the subset of JSONSchemaProps a structural schema of Serval's
// kinds uses.
type Schema struct {
	Type                   string             `json:"type,omitempty"`
	Format                 string             `json:"format,omitempty"`
	Description            string             `json:"description,omitempty"`
	Properties             map[string]*Schema `json:"properties,omitempty"`
	Required               []string           `json:"required,omitempty"`
	Items                  *Schema            `json:"items,omitempty"`
	AdditionalProperties   *Schema            `json:"additionalProperties,omitempty"`
	Enum                   []string           `json:"enum,omitempty"`
	Minimum                *int64             `json:"minimum,omitempty"`
	Maximum                *int64             `json:"maximum,omitempty"`
	Nullable               bool               `json:"nullable,omitempty"`
	XIntOrString           bool               `json:"x-kubernetes-int-or-string,omitempty"`
	XPreserveUnknownFields *bool              `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
	XValidations           []ValidationRule   `json:"x-kubernetes-validations,omitempty"`
}

// ValidationRule is one CEL rule of x-kubernetes-validations.
type ValidationRule struct {
	Rule    string `json:"rule"`
	Message string `json:"message,omitempty"`
}

// Name is the CRD's name: "<plural>.projectcalico.org".
func Name(info api.KindInfo) string { return info.Plural + "." + Group }

// GVR is the resource clients address the kind by.
func GVR(info api.KindInfo) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: Group, Version: Version, Resource: info.Plural}
}

// GVK is the kind's group, version and kind.
func GVK(info api.KindInfo) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: Group, Version: Version, Kind: info.Kind}
}

// For builds the CRD of one kind.
func For(info api.KindInfo) (*CustomResourceDefinition, error) {
	if info.Kind == "" || info.Plural == "" || info.New == nil {
		return nil, fmt.Errorf("crd: kind %q: incomplete registry entry (kind, plural and New are needed)", info.Kind)
	}
	t := reflect.TypeOf(info.New())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("crd: kind %s: Go type %s is not a struct", info.Kind, t)
	}
	w := &walker{inProgress: map[reflect.Type]bool{}}
	top, err := w.object(t, "")
	if err != nil {
		return nil, fmt.Errorf("crd: kind %s: %w", info.Kind, err)
	}
	top.Description = fmt.Sprintf("%s of Serval (Calico's %s/%s API).", info.Kind, Group, Version)
	for _, f := range []string{"apiVersion", "kind", "metadata"} {
		if top.Properties[f] == nil {
			return nil, fmt.Errorf("crd: kind %s: Go type %s has no %q field", info.Kind, t, f)
		}
	}
	scope := "Cluster"
	if info.Namespaced {
		scope = "Namespaced"
	}
	v := VersionSpec{Name: Version, Served: true, Storage: true, Schema: Validation{OpenAPIV3Schema: top}}
	if _, ok := top.Properties["status"]; ok {
		v.Subresources = &Subresources{Status: &struct{}{}}
	}
	return &CustomResourceDefinition{
		APIVersion: "apiextensions.k8s.io/v1",
		Kind:       "CustomResourceDefinition",
		Metadata:   Metadata{Name: Name(info), Labels: map[string]string{"app.kubernetes.io/part-of": "serval"}},
		Spec: Spec{
			Group: Group,
			Names: Names{
				Kind:       info.Kind,
				ListKind:   info.Kind + "List",
				Plural:     info.Plural,
				Singular:   strings.ToLower(info.Kind),
				ShortNames: shortNames(info),
			},
			Scope:    scope,
			Versions: []VersionSpec{v},
		},
	}, nil
}

// All builds the CRD of every kind registered, sorted by kind.
func All() ([]*CustomResourceDefinition, error) {
	var out []*CustomResourceDefinition
	for _, info := range api.Kinds() {
		c, err := For(info)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// HasStatus reports whether the kind's CRD has the status subresource: its
// status is then written through .../status, and a create or an update of
// the object leaves the status as it was.
func (c *CustomResourceDefinition) HasStatus() bool {
	return len(c.Spec.Versions) > 0 && c.Spec.Versions[0].Subresources != nil
}

// Unstructured returns the CRD as JSON-decoded maps, for a dynamic client.
func (c *CustomResourceDefinition) Unstructured() (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("crd: marshal %s: %w", c.Metadata.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("crd: unmarshal %s: %w", c.Metadata.Name, err)
	}
	return m, nil
}

// FileName is the name of the CRD's file in manifests/crds.
func (c *CustomResourceDefinition) FileName() string { return c.Metadata.Name + ".yaml" }

// YAML renders the CRD as the file manifests/crds holds: a header saying it
// is generated, then the CRD.
func (c *CustomResourceDefinition) YAML() ([]byte, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("crd: marshal %s: %w", c.Metadata.Name, err)
	}
	var out bytes.Buffer
	out.WriteString("# Code generated by `make crds` (go run ./internal/crd/gen); DO NOT EDIT.\n")
	fmt.Fprintf(&out, "# Serval's %s as a CustomResourceDefinition: kubectl apply -f manifests/crds/\n", c.Spec.Names.Kind)
	out.Write(b)
	return out.Bytes(), nil
}

// Files renders the CRDs of the given kinds as manifests/crds holds them:
// file name to content.
func Files(kinds []api.KindInfo) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, info := range kinds {
		c, err := For(info)
		if err != nil {
			return nil, err
		}
		b, err := c.YAML()
		if err != nil {
			return nil, err
		}
		out[c.FileName()] = b
	}
	return out, nil
}

// builtinNames are resource names and short names of Kubernetes' own
// resources. A CRD short name equal to one of them would make `kubectl get
// no` ambiguous, so the registry's short names that collide are left out.
var builtinNames = map[string]bool{
	"no": true, "nos": true, "node": true, "nodes": true, "po": true, "pod": true, "svc": true,
	"ns": true, "sa": true, "ep": true, "eps": true, "netpol": true, "cm": true, "ds": true,
	"deploy": true, "rs": true, "sts": true, "ing": true, "hpa": true, "pdb": true, "pv": true,
	"pvc": true, "sc": true, "csr": true, "cs": true, "ev": true, "limits": true, "quota": true,
	"rc": true, "pc": true, "crd": true, "crds": true, "networkpolicy": true, "networkpolicies": true,
}

// shortNames are the registry's short names less the singular and plural
// (which the CRD names anyway) and those of Kubernetes' own resources.
func shortNames(info api.KindInfo) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range info.ShortNames {
		s = strings.ToLower(s)
		if s == strings.ToLower(info.Kind) || s == info.Plural || builtinNames[s] || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
