package kubernetes_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/kubetest"
)

var cnpGVR = schema.GroupVersionResource{Group: "policy.networking.k8s.io", Version: "v1alpha2", Resource: "clusternetworkpolicies"}

// installCNPCRD installs a minimal CustomResourceDefinition of
// ClusterNetworkPolicies (no schema checks: the translation is tested in
// package k8sconv) and waits until it is served.
func installCNPCRD(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	dc := dynamic.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "clusternetworkpolicies.policy.networking.k8s.io",
			"annotations": map[string]any{"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/network-policy-api/pull/300"}},
		"spec": map[string]any{
			"group": "policy.networking.k8s.io", "scope": "Cluster",
			"names": map[string]any{"plural": "clusternetworkpolicies", "singular": "clusternetworkpolicy",
				"kind": "ClusterNetworkPolicy", "listKind": "ClusterNetworkPolicyList"},
			"versions": []any{map[string]any{"name": "v1alpha2", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if _, err := dc.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the ClusterNetworkPolicy CRD: %v", err)
	}
	for {
		_, err := dc.Resource(cnpGVR).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("ClusterNetworkPolicies are not served: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tierGraph keeps the endpoints the calculation graph reports.
type tierGraph struct {
	weps map[hoststate.EndpointID]hoststate.WorkloadEndpoint
}

func (g *tierGraph) OnIPSetUpdate(hoststate.IPSet)                                         {}
func (g *tierGraph) OnIPSetDelta(string, []hoststate.IPSetMember, []hoststate.IPSetMember) {}
func (g *tierGraph) OnIPSetRemove(string)                                                  {}
func (g *tierGraph) OnPolicyUpdate(hoststate.Policy)                                       {}
func (g *tierGraph) OnPolicyRemove(hoststate.PolicyID)                                     {}
func (g *tierGraph) OnProfileUpdate(hoststate.Profile)                                     {}
func (g *tierGraph) OnProfileRemove(string)                                                {}
func (g *tierGraph) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint)                { g.weps[ep.ID] = ep }
func (g *tierGraph) OnWorkloadEndpointRemove(id hoststate.EndpointID)                      { delete(g.weps, id) }
func (g *tierGraph) OnHostEndpointUpdate(hoststate.HostEndpoint)                           {}
func (g *tierGraph) OnHostEndpointRemove(hoststate.EndpointID)                             {}
func (g *tierGraph) OnIPPoolUpdate(string, hoststate.IPPool)                               {}
func (g *tierGraph) OnIPPoolRemove(string)                                                 {}
func (g *tierGraph) OnLocalBlockUpdate(netip.Prefix)                                       {}
func (g *tierGraph) OnLocalBlockRemove(netip.Prefix)                                       {}
func (g *tierGraph) OnConfigUpdate(hoststate.Config)                                       {}
func (g *tierGraph) OnInSync()                                                             {}

// TestKubeTiersAndLateClusterNetworkPolicies: on an API server without
// ClusterNetworkPolicies there are no kube tiers; a watch of global
// policies notices the resource being installed later and asks for a
// resync (ErrCompacted); then the tiers kube-admin and kube-baseline are
// listed, read-only, and a ClusterNetworkPolicy's policy is active in its
// tier in the calculation graph.
func TestKubeTiersAndLateClusterNetworkPolicies(t *testing.T) {
	c := kubetest.Start(t)
	installCRDs(t, c, "GlobalNetworkPolicy", "Tier", "WorkloadEndpoint")
	s := newStore(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	tierNames := func() map[string]*api.Tier {
		t.Helper()
		res, err := s.List(ctx, datastore.ListOptions{Kind: "Tier"})
		if err != nil {
			t.Fatalf("listing tiers: %v", err)
		}
		out := map[string]*api.Tier{}
		for _, r := range res.Items {
			out[r.GetObjectMeta().Name] = r.(*api.Tier)
		}
		return out
	}
	if got := tierNames(); got[api.KubeAdminTierName] != nil || got[api.KubeBaselineTierName] != nil {
		t.Errorf("kube tiers listed without ClusterNetworkPolicies served: %v", got)
	}
	if _, err := s.Get(ctx, api.Key{Kind: "Tier", Name: api.KubeAdminTierName}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("Get kube-admin without ClusterNetworkPolicies served: %v, want ErrNotFound", err)
	}

	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: "GlobalNetworkPolicy"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	installCNPCRD(t, c)
	select {
	case ev, ok := <-w.Events():
		if !ok || ev.Type != datastore.Error || !errors.Is(ev.Err, datastore.ErrCompacted) {
			t.Fatalf("watch after ClusterNetworkPolicies were installed: event %+v (open %v), want an Error wrapping ErrCompacted", ev, ok)
		}
	case <-ctx.Done():
		t.Fatal("the watch of global policies did not notice ClusterNetworkPolicies being installed")
	}

	tiers := tierNames()
	for _, want := range []struct {
		name  string
		order float64
	}{{api.KubeAdminTierName, 1000}, {api.KubeBaselineTierName, 10_000_000}} {
		tr := tiers[want.name]
		if tr == nil {
			t.Fatalf("tier %s not listed with ClusterNetworkPolicies served (tiers %v)", want.name, tiers)
		}
		if tr.Spec.Order == nil || *tr.Spec.Order != want.order || tr.Spec.DefaultAction == nil || *tr.Spec.DefaultAction != api.Pass {
			t.Errorf("tier %s: %+v, want order %v and default action Pass", want.name, tr.Spec, want.order)
		}
		got, err := s.Get(ctx, api.Key{Kind: "Tier", Name: want.name})
		if err != nil || got.GetObjectMeta().Name != want.name {
			t.Errorf("Get tier %s: %v %v", want.name, got, err)
		}
		order, pass := want.order, api.Pass
		stored := &api.Tier{TypeMeta: api.TypeMeta{Kind: "Tier"}, ObjectMeta: api.ObjectMeta{Name: want.name},
			Spec: api.TierSpec{Order: &order, DefaultAction: &pass}}
		if _, err := s.Create(ctx, stored); !errors.Is(err, kubernetes.ErrDerived) {
			t.Errorf("Create tier %s: %v, want ErrDerived", want.name, err)
		}
		if _, err := s.Update(ctx, stored); !errors.Is(err, kubernetes.ErrDerived) {
			t.Errorf("Update tier %s: %v, want ErrDerived", want.name, err)
		}
		if _, err := s.Delete(ctx, api.Key{Kind: "Tier", Name: want.name}, ""); !errors.Is(err, kubernetes.ErrDerived) {
			t.Errorf("Delete tier %s: %v, want ErrDerived", want.name, err)
		}
	}

	dc := dynamic.NewForConfigOrDie(c.RESTConfig())
	cnp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
		"metadata": map[string]any{"name": "deny-ops"},
		"spec": map[string]any{
			"tier": "Admin", "priority": int64(10),
			"subject": map[string]any{"namespaces": map[string]any{}},
			"ingress": []any{map[string]any{"name": "deny-ops", "action": "Deny",
				"from": []any{map[string]any{"namespaces": map[string]any{"matchLabels": map[string]any{"team": "ops"}}}}}},
		},
	}}
	if _, err := dc.Resource(cnpGVR).Create(ctx, cnp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gnps, err := s.List(ctx, datastore.ListOptions{Kind: "GlobalNetworkPolicy"})
	if err != nil {
		t.Fatal(err)
	}
	var updates []datastore.Update
	for _, r := range gnps.Items {
		updates = append(updates, datastore.Update{Type: datastore.Added, Key: api.KeyOf(r), Object: r})
	}
	if len(updates) != 1 || updates[0].Key.Name != "kcnp.kube-admin.deny-ops" {
		t.Fatalf("global policies %v, want kcnp.kube-admin.deny-ops", updates)
	}
	for _, tr := range []string{api.KubeAdminTierName, api.KubeBaselineTierName} {
		updates = append(updates, datastore.Update{Type: datastore.Added, Key: api.Key{Kind: "Tier", Name: tr}, Object: tiers[tr]})
	}
	wep := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Namespace: "shop", Name: "node--1-k8s-web-eth0",
			Labels: map[string]string{"projectcalico.org/namespace": "shop", "projectcalico.org/orchestrator": api.OrchestratorKubernetes}},
		Spec: api.WorkloadEndpointSpec{Orchestrator: api.OrchestratorKubernetes, Node: "node-1", Pod: "web", Endpoint: "eth0",
			InterfaceName: "cali12345", IPNetworks: []string{"10.65.0.5/32", "fd00:65::5/128"}}}
	updates = append(updates, datastore.Update{Type: datastore.Added, Key: api.KeyOf(wep), Object: wep})
	g := &tierGraph{weps: map[hoststate.EndpointID]hoststate.WorkloadEndpoint{}}
	graph := calc.New("node-1", g, nil)
	graph.OnUpdates(updates)
	graph.OnStatus(datastore.InSync)
	if len(g.weps) != 1 {
		t.Fatalf("%d local endpoints, want 1", len(g.weps))
	}
	for _, ep := range g.weps {
		if len(ep.Tiers) != 1 || ep.Tiers[0].Name != api.KubeAdminTierName || ep.Tiers[0].DefaultAction != hoststate.Pass ||
			len(ep.Tiers[0].IngressPolicies) != 1 || ep.Tiers[0].IngressPolicies[0].Name != "kcnp.kube-admin.deny-ops" {
			t.Errorf("endpoint tiers %+v, want kube-admin (Pass) with ingress policy kcnp.kube-admin.deny-ops", ep.Tiers)
		}
	}
}
