package k8sconv

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// graphState keeps what the calculation graph last said: set members,
// policies and local endpoints.
type graphState struct {
	sets     map[string]map[hoststate.IPSetMember]bool
	policies map[hoststate.PolicyID]hoststate.Policy
	weps     map[hoststate.EndpointID]hoststate.WorkloadEndpoint
}

func newGraphState() *graphState {
	return &graphState{
		sets:     map[string]map[hoststate.IPSetMember]bool{},
		policies: map[hoststate.PolicyID]hoststate.Policy{},
		weps:     map[hoststate.EndpointID]hoststate.WorkloadEndpoint{},
	}
}

func (s *graphState) OnIPSetUpdate(set hoststate.IPSet) {
	m := map[hoststate.IPSetMember]bool{}
	for _, x := range set.Members {
		m[x] = true
	}
	s.sets[set.ID] = m
}

func (s *graphState) OnIPSetDelta(id string, added, removed []hoststate.IPSetMember) {
	for _, x := range removed {
		delete(s.sets[id], x)
	}
	for _, x := range added {
		s.sets[id][x] = true
	}
}
func (s *graphState) OnIPSetRemove(id string)                                { delete(s.sets, id) }
func (s *graphState) OnPolicyUpdate(p hoststate.Policy)                      { s.policies[p.ID] = p }
func (s *graphState) OnPolicyRemove(id hoststate.PolicyID)                   { delete(s.policies, id) }
func (s *graphState) OnProfileUpdate(hoststate.Profile)                      {}
func (s *graphState) OnProfileRemove(string)                                 {}
func (s *graphState) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) { s.weps[ep.ID] = ep }
func (s *graphState) OnWorkloadEndpointRemove(id hoststate.EndpointID)       { delete(s.weps, id) }
func (s *graphState) OnHostEndpointUpdate(hoststate.HostEndpoint)            {}
func (s *graphState) OnHostEndpointRemove(hoststate.EndpointID)              {}
func (s *graphState) OnIPPoolUpdate(string, hoststate.IPPool)                {}
func (s *graphState) OnIPPoolRemove(string)                                  {}
func (s *graphState) OnLocalBlockUpdate(netip.Prefix)                        {}
func (s *graphState) OnLocalBlockRemove(netip.Prefix)                        {}
func (s *graphState) OnConfigUpdate(hoststate.Config)                        {}
func (s *graphState) OnInSync()                                              {}

// matches: the member is in every set (a rule's sets are ANDed).
func (s *graphState) inAll(ids []string, m hoststate.IPSetMember) bool {
	if len(ids) == 0 {
		return false
	}
	for _, id := range ids {
		if !s.sets[id][m] {
			return false
		}
	}
	return true
}

func update(t *testing.T, r api.Resource) datastore.Update {
	t.Helper()
	r.SetDefaults()
	if err := api.Validate(r); err != nil {
		t.Fatalf("invalid: %v", err)
	}
	return datastore.Update{Type: datastore.Added, Key: api.KeyOf(r), Object: r}
}

func podOn(t *testing.T, node, ns, name, sa string, labels map[string]string, ips ...string) *api.WorkloadEndpoint {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: sa, Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	w, ok, err := PodToWorkloadEndpoint(p)
	if err != nil || !ok {
		t.Fatalf("pod %s/%s: no endpoint (%v)", ns, name, err)
	}
	return w
}

// TestCalcGraphSeesKubernetesIdentity: through the calculation graph, a
// pod's labels, its namespace's labels (the kns.<namespace> profile's
// pcns.* labels) and its service account's (ksa.<namespace>.<account>,
// pcsa.*) reach its endpoint's labels, and a converted NetworkPolicy's
// namespaceSelector selects pods by their namespace's labels, following a
// change of those labels.
func TestCalcGraphSeesKubernetesIdentity(t *testing.T) {
	st := newGraphState()
	g := calc.New("node-1", st, nil)
	ns := func(name string, labels map[string]string) *api.Profile {
		return NamespaceToProfile(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
	}
	np, err := NetworkPolicyToPolicy(&networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-dev-clients", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "dev"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: portName("http")}},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A Calico policy that selects the pod only by what it inherits: the
	// namespace's labels and name, the service account's labels and name.
	order := 1.0
	identity := &api.GlobalNetworkPolicy{
		TypeMeta:   api.TypeMeta{Kind: "GlobalNetworkPolicy", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{Name: "identity"},
		Spec: api.GlobalNetworkPolicySpec{
			Order: &order,
			Selector: "app == 'web' && pcns.team == 'retail' && pcns.projectcalico.org/name == 'shop' && " +
				"pcsa.tier == 'gold' && pcsa.projectcalico.org/name == 'frontend' && projectcalico.org/serviceaccount == 'frontend'",
			Types:   []api.PolicyType{api.PolicyTypeIngress},
			Ingress: []api.Rule{{Action: api.Allow}},
		},
	}
	web := podOn(t, "node-1", "shop", "web-0", "frontend", map[string]string{"app": "web"}, "10.65.0.5", "fd00:65::5")
	client := podOn(t, "node-2", "dev", "client", "default", map[string]string{"role": "client"}, "10.65.1.7", "fd00:65:1::7")
	intruder := podOn(t, "node-2", "ops", "intruder", "default", map[string]string{"role": "client"}, "10.65.1.8", "fd00:65:1::8")
	g.OnUpdates([]datastore.Update{
		update(t, ns("shop", map[string]string{"team": "retail"})),
		update(t, ns("dev", map[string]string{"team": "dev"})),
		update(t, ns("ops", map[string]string{"team": "ops"})),
		update(t, ServiceAccountToProfile(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "frontend", Namespace: "shop", Labels: map[string]string{"tier": "gold"}}})),
		update(t, np), update(t, identity), update(t, web), update(t, client), update(t, intruder),
	})
	g.OnStatus(datastore.InSync)

	if len(st.weps) != 1 {
		t.Fatalf("%d local endpoints, want 1 (web-0)", len(st.weps))
	}
	var ep hoststate.WorkloadEndpoint
	for _, ep = range st.weps {
	}
	if ep.InterfaceName != web.Spec.InterfaceName {
		t.Errorf("endpoint on %q, want %q", ep.InterfaceName, web.Spec.InterfaceName)
	}
	var selected []string
	for _, tr := range ep.Tiers {
		for _, id := range tr.IngressPolicies {
			selected = append(selected, id.Name)
		}
	}
	for _, want := range []string{"shop/knp.default.allow-dev-clients", "identity"} {
		if !slices.Contains(selected, want) {
			t.Errorf("policy %s does not select web-0 (selected: %v): its labels did not reach the endpoint", want, selected)
		}
	}
	if !slices.Equal(ep.ProfileIDs, []string{"kns.shop", "ksa.shop.frontend"}) {
		t.Errorf("profiles %v, want [kns.shop ksa.shop.frontend]", ep.ProfileIDs)
	}

	pol, ok := st.policies[hoststate.PolicyID{Tier: "default", Kind: "NetworkPolicy", Name: "shop/knp.default.allow-dev-clients"}]
	if !ok || len(pol.InboundRules) != 1 {
		t.Fatalf("the converted policy did not reach the dataplane as one rule: %+v (policies: %v)", pol, st.policies)
	}
	rule := pol.InboundRules[0]
	member := func(ip string) hoststate.IPSetMember {
		a := netip.MustParseAddr(ip)
		return hoststate.IPSetMember{Prefix: netip.PrefixFrom(a, a.BitLen())}
	}
	check := func(when string, clientIn bool) {
		t.Helper()
		for _, ip := range []string{"10.65.1.7", "fd00:65:1::7"} {
			if got := st.inAll(rule.SrcIPSetIDs, member(ip)); got != clientIn {
				t.Errorf("%s: client %s matched by the namespaceSelector: %v, want %v", when, ip, got, clientIn)
			}
		}
		for _, ip := range []string{"10.65.1.8", "fd00:65:1::8"} {
			if st.inAll(rule.SrcIPSetIDs, member(ip)) {
				t.Errorf("%s: a pod of namespace ops (team ops) is matched by namespaceSelector team == 'dev': %s", when, ip)
			}
		}
	}
	check("initially", true)
	// The named port resolves to web-0's http port, both families.
	for _, ip := range []string{"10.65.0.5", "fd00:65::5"} {
		m := member(ip)
		m.Protocol, m.Port = 6, 8080
		if !st.inAll(rule.DstNamedPortIPSetIDs, m) {
			t.Errorf("named port http of web-0 (%s:8080) not in the rule's named-port set", ip)
		}
	}

	// The namespace's labels change: the selection follows.
	g.OnUpdates([]datastore.Update{update(t, ns("dev", map[string]string{"team": "qa"}))})
	check("after namespace dev lost team=dev", false)
	g.OnUpdates([]datastore.Update{update(t, ns("ops", map[string]string{"team": "dev"}))})
	for _, ip := range []string{"10.65.1.8", "fd00:65:1::8"} {
		if !st.inAll(rule.SrcIPSetIDs, member(ip)) {
			t.Errorf("after namespace ops gained team=dev: %s not matched", ip)
		}
	}
}
