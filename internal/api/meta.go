package api

import (
	"time"
)

// Group and Version of every kind in this package: manifests written for
// Calico's projectcalico.org/v3 API apply unchanged.
const (
	Group      = "projectcalico.org"
	Version    = "v3"
	APIVersion = Group + "/" + Version
)

// TypeMeta names the kind of a resource and the API version it is written in.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// GetTypeMeta returns the TypeMeta itself; it makes every kind that embeds
// TypeMeta satisfy part of Resource.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// ObjectMeta is the metadata every resource carries. Name, Namespace, Labels
// and Annotations are the user's; UID, ResourceVersion, CreationTimestamp and
// Generation are set by the datastore and ignored on input except
// ResourceVersion, which makes an update conditional.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// GetObjectMeta returns the metadata itself, so that every kind embedding
// ObjectMeta gets the method by promotion.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }

// Resource is what every kind of this API implements. Kinds are pointers to
// structs that embed TypeMeta and ObjectMeta (tagged "metadata") and carry a
// Spec.
type Resource interface {
	GetTypeMeta() *TypeMeta
	GetObjectMeta() *ObjectMeta
	// SetDefaults fills in every field Calico defaults when it is unset. It
	// is idempotent and never overwrites a value the user gave.
	SetDefaults()
	// Validate checks the spec (the metadata is checked by api.Validate) and
	// returns every problem found, each with its field path.
	Validate() ErrorList
}

// KeyOf returns the identity of a resource: kind, namespace, name.
func KeyOf(r Resource) Key {
	m := r.GetObjectMeta()
	return Key{Kind: r.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name}
}

// Key identifies one resource. Namespace is empty for cluster-scoped kinds.
type Key struct {
	Kind      string
	Namespace string
	Name      string
}

// String renders the key as people read it: `NetworkPolicy "prod/allow-db"`.
func (k Key) String() string {
	if k.Namespace != "" {
		return k.Kind + ` "` + k.Namespace + "/" + k.Name + `"`
	}
	return k.Kind + ` "` + k.Name + `"`
}
