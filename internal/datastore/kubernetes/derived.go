package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/k8sconv"
)

// ErrDerived is wrapped by a write to a resource that Kubernetes objects
// stand for: the error says which object to change instead.
var ErrDerived = errors.New("the resource is derived from a Kubernetes object and cannot be written")

// A deriver maps one Kubernetes resource onto a Serval kind (package
// k8sconv), read-only. A kind may have several (Profiles come from
// Namespaces and ServiceAccounts) and may also be stored (a
// NetworkPolicy is either a stored one or "knp.default.<name>" from a
// Kubernetes NetworkPolicy): its lists merge them all at one revision,
// its watches follow them all.
type deriver struct {
	kind       string // Serval kind
	from       string // "Pods": what the resources come from
	change     string // "the Pod": what to change instead
	apiPath    string // "/api/v1"
	resource   string // "pods"
	namespaced bool   // the Kubernetes resource is
	// owns says whether a Serval name of the kind belongs to this deriver.
	owns func(name string) bool
	// source names the Kubernetes object behind a key (name "" when
	// none).
	source func(key api.Key) (namespace, name string)
	// newObject is an empty object of the Kubernetes resource.
	newObject func() runtime.Object
	// newList is an empty list of it when it is one of Kubernetes' own
	// resources, read in protobuf (wire.go); nil for a custom resource,
	// read in JSON.
	newList func() runtime.Object
	// slim, when set, decodes an object's own protobuf message reading
	// only what convert uses (slimpod.go); lists and watches use it.
	slim func(msg []byte) (runtime.Object, error)
	// convert derives the resource of one Kubernetes object; nil when it
	// stands for none. An error with a resource is a report (what could
	// not be translated was left out, failing closed), logged.
	convert func(runtime.Object) (api.Resource, error)
}

// protobuf says whether the resource is one of Kubernetes' own, read in
// protobuf; a custom resource has only JSON.
func (d *deriver) protobuf() bool { return d.newList != nil }

// format is how the deriver's resource is read off the wire.
func (d *deriver) format(log *slog.Logger) format {
	if d.protobuf() {
		return protoFormat{d: d, log: log}
	}
	return jsonFormat{object: func(raw []byte) (api.Resource, int64, error) { return d.read(log, raw) }}
}

// read decodes one object (a GET's answer, a PATCH's, an item of a JSON
// list) and derives the resource it stands for.
func (d *deriver) read(log *slog.Logger, raw []byte) (api.Resource, int64, error) {
	o, err := d.decode(raw)
	if err != nil {
		return nil, 0, err
	}
	return d.derive(log, o)
}

// decode reads the answer of a request for one object (a GET, a PATCH)
// in the deriver's wire format.
func (d *deriver) decode(raw []byte) (runtime.Object, error) {
	if d.protobuf() {
		o, _, err := protoObjects.Decode(raw, nil, d.newObject())
		if err != nil {
			return nil, fmt.Errorf("decoding one of %s: %w", d.from, err)
		}
		return o, nil
	}
	o := d.newObject()
	if err := json.Unmarshal(raw, o); err != nil {
		return nil, fmt.Errorf("decoding one of %s: %w", d.from, err)
	}
	return o, nil
}

// derive converts one Kubernetes object into the resource it stands for
// (nil when none) and the revision it was written at.
func (d *deriver) derive(log *slog.Logger, o runtime.Object) (api.Resource, int64, error) {
	m, err := meta.Accessor(o)
	if err != nil {
		return nil, 0, fmt.Errorf("one of %s: %w", d.from, err)
	}
	rv := m.GetResourceVersion()
	rev, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || rev <= 0 {
		return nil, 0, fmt.Errorf("%s %s/%s: resourceVersion %q is not a revision", d.from, m.GetNamespace(), m.GetName(), rv)
	}
	obj, err := d.convert(o)
	if err != nil {
		if obj == nil {
			return nil, 0, err
		}
		log.Warn("Kubernetes object translated in part (what was left out denies)", "kind", d.kind, "from", d.from, "err", err)
	}
	if obj == nil {
		return nil, rev, nil
	}
	*obj.GetTypeMeta() = api.TypeMeta{Kind: d.kind, APIVersion: api.APIVersion}
	obj.GetObjectMeta().ResourceVersion = rv
	return obj, rev, nil
}

// typed adapts a conversion of one Kubernetes type to the deriver's.
func typed[T runtime.Object](conv func(T) (api.Resource, error)) func(runtime.Object) (api.Resource, error) {
	return func(o runtime.Object) (api.Resource, error) {
		t, ok := o.(T)
		if !ok {
			var want T
			return nil, fmt.Errorf("decoded a %T where a %T was expected", o, want)
		}
		return conv(t)
	}
}

// Kubernetes object names behind Serval names.
func prefixed(prefix string) func(string) bool {
	return func(name string) bool { return strings.HasPrefix(name, prefix) }
}

var (
	namespaceProfiles = &deriver{
		kind: "Profile", from: "Namespaces", change: "the Namespace",
		apiPath: "/api/v1", resource: "namespaces",
		owns: prefixed(k8sconv.NamespaceProfilePrefix),
		source: func(k api.Key) (string, string) {
			return "", strings.TrimPrefix(k.Name, k8sconv.NamespaceProfilePrefix)
		},
		newObject: func() runtime.Object { return &corev1.Namespace{} },
		newList:   func() runtime.Object { return &corev1.NamespaceList{} },
		convert: typed(func(ns *corev1.Namespace) (api.Resource, error) {
			return k8sconv.NamespaceToProfile(ns), nil
		}),
	}
	serviceAccountProfiles = &deriver{
		kind: "Profile", from: "ServiceAccounts", change: "the ServiceAccount",
		apiPath: "/api/v1", resource: "serviceaccounts", namespaced: true,
		owns: prefixed(k8sconv.SAProfilePrefix),
		// ksa.<namespace>.<account>: a namespace holds no '.'.
		source: func(k api.Key) (string, string) {
			ns, sa, _ := strings.Cut(strings.TrimPrefix(k.Name, k8sconv.SAProfilePrefix), ".")
			return ns, sa
		},
		newObject: func() runtime.Object { return &corev1.ServiceAccount{} },
		newList:   func() runtime.Object { return &corev1.ServiceAccountList{} },
		convert: typed(func(sa *corev1.ServiceAccount) (api.Resource, error) {
			return k8sconv.ServiceAccountToProfile(sa), nil
		}),
	}
	networkPolicies = &deriver{
		kind: "NetworkPolicy", from: "Kubernetes NetworkPolicies", change: "the Kubernetes NetworkPolicy",
		apiPath: "/apis/networking.k8s.io/v1", resource: "networkpolicies", namespaced: true,
		owns:      prefixed(knpPrefix),
		source:    func(k api.Key) (string, string) { return k.Namespace, strings.TrimPrefix(k.Name, knpPrefix) },
		newObject: func() runtime.Object { return &networkingv1.NetworkPolicy{} },
		newList:   func() runtime.Object { return &networkingv1.NetworkPolicyList{} },
		convert: typed(func(np *networkingv1.NetworkPolicy) (api.Resource, error) {
			p, err := k8sconv.NetworkPolicyToPolicy(np)
			if p == nil {
				return nil, err
			}
			return p, err
		}),
	}
	clusterNetworkPolicies = &deriver{
		kind: "GlobalNetworkPolicy", from: "ClusterNetworkPolicies", change: "the ClusterNetworkPolicy",
		apiPath: "/apis/policy.networking.k8s.io/v1alpha2", resource: "clusternetworkpolicies",
		owns: func(name string) bool {
			return strings.HasPrefix(name, k8sconv.CNPAdminPrefix) || strings.HasPrefix(name, k8sconv.CNPBaselinePrefix)
		},
		source: func(k api.Key) (string, string) {
			return "", strings.TrimPrefix(strings.TrimPrefix(k.Name, k8sconv.CNPAdminPrefix), k8sconv.CNPBaselinePrefix)
		},
		// A custom resource: JSON.
		newObject: func() runtime.Object { return &cnpv1.ClusterNetworkPolicy{} },
		convert: typed(func(cnp *cnpv1.ClusterNetworkPolicy) (api.Resource, error) {
			p, err := k8sconv.ClusterNetworkPolicyToPolicy(cnp)
			if p == nil {
				return nil, err
			}
			return p, err
		}),
	}
	podEndpoints = &deriver{
		kind: "WorkloadEndpoint", from: "Pods", change: "the Pod",
		apiPath: "/api/v1", resource: "pods", namespaced: true,
		owns:      func(string) bool { return true },
		source:    func(k api.Key) (string, string) { return k.Namespace, podOfEndpoint(k.Name) },
		newObject: func() runtime.Object { return &corev1.Pod{} },
		newList:   func() runtime.Object { return &corev1.PodList{} },
		slim:      slimPod,
		convert: typed(func(pod *corev1.Pod) (api.Resource, error) {
			w, ok, err := k8sconv.PodToWorkloadEndpoint(pod)
			if !ok || w == nil {
				return nil, err
			}
			return w, err
		}),
	}
	kubeNodes = &deriver{
		kind: "Node", from: "Kubernetes Nodes", change: "the Kubernetes Node",
		apiPath: "/api/v1", resource: "nodes",
		owns:      func(string) bool { return true },
		source:    func(k api.Key) (string, string) { return "", k.Name },
		newObject: func() runtime.Object { return &corev1.Node{} },
		newList:   func() runtime.Object { return &corev1.NodeList{} },
		convert: typed(func(n *corev1.Node) (api.Resource, error) {
			node, err := k8sconv.NodeToNode(n)
			if node == nil {
				return nil, err
			}
			return node, err
		}),
	}
)

// knpPrefix names the policies derived from Kubernetes NetworkPolicies.
const knpPrefix = "knp.default."

// podOfEndpoint is the pod name in a WorkloadEndpoint name
// <node>-k8s-<pod>-eth0, where each part has its '-' doubled; "" when the
// name is not of that form.
func podOfEndpoint(name string) string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '-' {
			cur.WriteByte(name[i])
			continue
		}
		if i+1 < len(name) && name[i+1] == '-' {
			cur.WriteByte('-')
			i++
			continue
		}
		parts = append(parts, cur.String())
		cur.Reset()
	}
	parts = append(parts, cur.String())
	if len(parts) != 4 || parts[1] != api.OrchestratorKubernetes {
		return ""
	}
	return parts[2]
}

// derivedKinds are the kinds a store derives by default: policies and
// profiles from what Kubernetes has of them, beside the stored ones.
func defaultDerivers() map[string][]*deriver {
	return map[string][]*deriver{
		"Profile":             {namespaceProfiles, serviceAccountProfiles},
		"NetworkPolicy":       {networkPolicies},
		"GlobalNetworkPolicy": {clusterNetworkPolicies},
	}
}

// storedToo are the derived kinds that are also stored.
var storedToo = map[string]bool{"Profile": true, "NetworkPolicy": true, "GlobalNetworkPolicy": true}

// WithStoredWorkloadsAndNodes keeps WorkloadEndpoints and Nodes as
// custom resources of their own instead of deriving them from Pods and
// Kubernetes Nodes (as Calico's Kubernetes mode does, and this store by
// default). It is for clusters whose workloads are not Kubernetes Pods,
// and for the datastore conformance tests, which write both kinds freely.
func WithStoredWorkloadsAndNodes() Option {
	return func(o *options) { o.storeWorkloadsAndNodes = true }
}

// deriverOf is the deriver a key belongs to, nil for a stored resource.
func (s *Store) deriverOf(key api.Key) *deriver {
	for _, d := range s.derivers[key.Kind] {
		if d.owns(key.Name) {
			return d
		}
	}
	return nil
}

// IsDerived says whether key names a resource derived from a Kubernetes
// object (one that is not a custom resource of its own).
func (s *Store) IsDerived(key api.Key) bool {
	return isKubeTier(key) || s.deriverOf(key) != nil
}

// refuseDerived fails a write to a derived resource.
func (s *Store) refuseDerived(op string, key api.Key) error {
	if isKubeTier(key) {
		return fmt.Errorf("%s: %w: Tier %q is the tier of ClusterNetworkPolicies", op, ErrDerived, key.Name)
	}
	d := s.deriverOf(key)
	if d == nil {
		return nil
	}
	return fmt.Errorf("%s: %w: %s %q is derived from %s; change %s instead", op, ErrDerived, key.Kind, key.Name, d.from, d.change)
}

// derivedRequest starts a request on a deriver's Kubernetes resource.
func (s *Store) derivedRequest(verb string, d *deriver, namespace, name string) *rest.Request {
	r := s.rc.Verb(verb).AbsPath(d.apiPath).Resource(d.resource)
	if d.protobuf() {
		r = r.SetHeader("Accept", runtime.ContentTypeProtobuf)
	}
	if d.namespaced && namespace != "" {
		r = r.Namespace(namespace)
	}
	if name != "" {
		r = r.Name(name)
	}
	return r
}

// getDerived reads the Kubernetes object behind key and derives it.
func (s *Store) getDerived(ctx context.Context, d *deriver, key api.Key) (api.Resource, error) {
	ns, name := d.source(key)
	if name == "" || (d.namespaced && ns == "") {
		return nil, fmt.Errorf("%w: no %s stands for it", datastore.ErrNotFound, strings.TrimSuffix(d.from, "s"))
	}
	raw, err := s.do(ctx, api.Key{Name: name}, s.derivedRequest("GET", d, ns, name))
	if err != nil {
		return nil, err
	}
	obj, _, err := d.read(s.log, raw)
	if err != nil {
		return nil, err
	}
	if obj == nil || api.KeyOf(obj) != key {
		return nil, fmt.Errorf("%w: %s %s/%s stands for no %s %q", datastore.ErrNotFound, d.from, ns, name, key.Kind, key.Name)
	}
	return obj, nil
}
