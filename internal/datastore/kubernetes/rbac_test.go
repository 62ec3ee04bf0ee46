package kubernetes_test

import (
	"context"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/cni"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubetest"
)

const nodeSA = "system:serviceaccount:kube-system:serval-node"

var nodeSAGroups = []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}

// TestServalNodeRBAC: with manifests/serval-node-rbac.yaml and nothing
// more, the serval-node service account may do what serval-node and the
// CNI plugins do (list and watch every kind the syncer reads through the
// backend, the Kubernetes objects kinds are derived from, write IPAM
// state, its Node, Events, a pod's status annotations) and may not do
// more (delete pods, read secrets, write policies).
func TestServalNodeRBAC(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	c.MustKubectl(t, "apply", "-f", "../../../manifests/serval-node-rbac.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := k8s.NewForConfigOrDie(c.RESTConfig())

	type access struct {
		group, resource, sub, verb string
		allowed                    bool
	}
	cases := []access{
		{"", "pods", "", "delete", false},
		{"", "pods", "", "update", false},
		{"", "secrets", "", "list", false},
		{"", "pods", "status", "patch", true},
		{"", "namespaces", "", "get", true},
		{"", "nodes", "", "patch", true},
		{"", "events", "", "create", true},
		{"events.k8s.io", "events", "", "create", true},
		{"networking.k8s.io", "networkpolicies", "", "create", false},
		{"policy.networking.k8s.io", "clusternetworkpolicies", "", "watch", true},
		{api.Group, "globalnetworkpolicies", "", "create", false},
		{api.Group, "networkpolicies", "", "delete", false},
		{api.Group, "ipamblocks", "", "update", true},
		{api.Group, "ipamhandles", "", "create", true},
		{api.Group, "blockaffinities", "", "delete", true},
		{api.Group, "nodes", "", "create", true},
		{api.Group, "nodes", "status", "update", true},
	}
	for _, k := range api.Kinds() {
		for _, verb := range []string{"get", "list", "watch"} {
			cases = append(cases, access{api.Group, k.Plural, "", verb, true})
		}
	}
	for _, r := range []string{"pods", "namespaces", "serviceaccounts", "nodes"} {
		for _, verb := range []string{"list", "watch"} {
			cases = append(cases, access{"", r, "", verb, true})
		}
	}
	cases = append(cases, access{"networking.k8s.io", "networkpolicies", "", "watch", true})
	for _, a := range cases {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: nodeSA, Groups: nodeSAGroups,
			ResourceAttributes: &authzv1.ResourceAttributes{Group: a.group, Resource: a.resource, Subresource: a.sub, Verb: a.verb, Namespace: "default"},
		}}
		got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review of %+v: %v", a, err)
		}
		if got.Status.Allowed != a.allowed {
			t.Errorf("serval-node may %s %s/%s (%s): %v, want %v", a.verb, a.group, a.resource, a.sub, got.Status.Allowed, a.allowed)
		}
	}

	// What the backend does, as the service account: list every kind,
	// derived ones included (watch is in the access reviews above).
	saCfg := c.UserConfig(nodeSA, nodeSAGroups...)
	s, err := kubernetes.New(saCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range api.Kinds() {
		if k.Kind == unservedKind {
			continue
		}
		if _, err := s.List(ctx, datastore.ListOptions{Kind: k.Kind}); err != nil {
			t.Errorf("as serval-node: %v", err)
		}
	}

	// The CNI plugin's write of a pod's addresses, and no more.
	ns := c.Namespace(t, "rbac")
	// No controller manager makes the namespace's default account.
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saKube := k8s.NewForConfigOrDie(saCfg)
	ip := "10.66.0.9/32,fd00:66::9/128"
	if err := (cni.ClientPodAPI{Client: saKube}).PatchPodAnnotations(ctx, ns, pod.Name, "", map[string]*string{"cni.projectcalico.org/podIPs": &ip}); err != nil {
		t.Errorf("as serval-node, patching the pod's status annotations: %v", err)
	}
	got, err := admin.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || got.Annotations["cni.projectcalico.org/podIPs"] != ip {
		t.Errorf("pod annotations after the patch: %v (%v)", got.Annotations, err)
	}
	if err := saKube.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("as serval-node, deleting a pod: %v, want Forbidden", err)
	}
}
