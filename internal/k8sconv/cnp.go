package k8sconv

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1 "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/servalnet/serval/internal/api"
)

// Names Calico gives the policies of ClusterNetworkPolicies, by tier.
const (
	CNPAdminPrefix    = "kcnp." + api.KubeAdminTierName + "."
	CNPBaselinePrefix = "kcnp." + api.KubeBaselineTierName + "."
	// RuleNameAnnotation carries a rule's name into the rule's metadata.
	RuleNameAnnotation = "name"
)

// KubeTiers are the tiers of ClusterNetworkPolicy as Calico creates them:
// kube-admin (order 1,000) before every other tier, kube-baseline (order
// 10,000,000) after the default tier, both passing what their policies do
// not decide to the next tier.
func KubeTiers() []*api.Tier {
	tier := func(name string, order float64) *api.Tier {
		pass := api.Pass
		return &api.Tier{
			TypeMeta:   api.TypeMeta{Kind: "Tier", APIVersion: api.APIVersion},
			ObjectMeta: api.ObjectMeta{Name: name},
			Spec:       api.TierSpec{Order: &order, DefaultAction: &pass},
		}
	}
	return []*api.Tier{
		tier(api.KubeAdminTierName, api.KubeAdminTierOrder),
		tier(api.KubeBaselineTierName, api.KubeBaselineTierOrder),
	}
}

// ClusterNetworkPolicyName is the name of the GlobalNetworkPolicy a
// ClusterNetworkPolicy becomes: kcnp.kube-admin.<name> or
// kcnp.kube-baseline.<name> (kube-admin for a tier it does not know).
func ClusterNetworkPolicyName(cnp *cnpv1.ClusterNetworkPolicy) string {
	if cnp.Spec.Tier == cnpv1.BaselineTier {
		return CNPBaselinePrefix + cnp.Name
	}
	return CNPAdminPrefix + cnp.Name
}

// ClusterNetworkPolicyToPolicy translates a ClusterNetworkPolicy as Calico
// does, into a GlobalNetworkPolicy in the tier kube-admin (tier Admin) or
// kube-baseline (tier Baseline), its priority as order: the subject as
// namespaceSelector and selector (Kubernetes pods only), Accept as Allow,
// Deny and Pass as themselves, one rule per protocol (sorted, as Calico)
// and peer, namespaces and pods peers as namespaceSelector and selector,
// networks as nets (one rule per IP family), ports as numbers, ranges and
// named ports; the rule's name in its metadata. Types are the directions
// that have rules (the tiers pass what no rule matches).
//
// Anything it cannot translate (a nodes or domainNames peer, a peer or
// protocol that sets no field it knows or several, an unknown action or
// tier, a bad selector, port or CIDR) makes the whole policy fail closed:
// each direction that has rules gets a single Deny rule instead of them
// (an unknown subject: every Kubernetes pod; an unknown tier: kube-admin),
// and the error, which names the policy and each field, says why. Calico
// itself replaces only the rule (Deny and Pass rules by a Deny, Accept
// rules dropped); Serval denies the whole policy, as its other kinds fail.
func ClusterNetworkPolicyToPolicy(cnp *cnpv1.ClusterNetworkPolicy) (*api.GlobalNetworkPolicy, error) {
	who := "ClusterNetworkPolicy " + cnp.Name
	var errs []error
	fail := func(field string, err error) { errs = append(errs, fmt.Errorf("%s: %s: %w", who, field, err)) }

	order := float64(cnp.Spec.Priority)
	g := &api.GlobalNetworkPolicy{
		TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{
			Name:              ClusterNetworkPolicyName(cnp),
			ResourceVersion:   cnp.ResourceVersion,
			CreationTimestamp: timePtr(cnp.CreationTimestamp.Time),
		},
		Spec: api.GlobalNetworkPolicySpec{Tier: api.KubeAdminTierName, Order: &order},
	}
	switch cnp.Spec.Tier {
	case cnpv1.AdminTier:
	case cnpv1.BaselineTier:
		g.Spec.Tier = api.KubeBaselineTierName
	default:
		fail("spec.tier", fmt.Errorf("%q is not a tier (Admin, Baseline)", cnp.Spec.Tier))
	}
	if cnp.Spec.Priority < 0 || cnp.Spec.Priority > 1000 {
		fail("spec.priority", fmt.Errorf("%d is not from 0 to 1000", cnp.Spec.Priority))
	}

	g.Spec.Selector = api.K8sPodSelector(nil)
	sub := cnp.Spec.Subject
	switch {
	case sub.Namespaces != nil && sub.Pods != nil:
		fail("spec.subject", errors.New("sets both namespaces and pods"))
	case sub.Namespaces != nil:
		if err := checkSelector(sub.Namespaces); err != nil {
			fail("spec.subject.namespaces", err)
			break
		}
		g.Spec.NamespaceSelector = nsSelector(sub.Namespaces)
	case sub.Pods != nil:
		if err := firstErr(checkSelector(&sub.Pods.NamespaceSelector), checkSelector(&sub.Pods.PodSelector)); err != nil {
			fail("spec.subject.pods", err)
			break
		}
		g.Spec.NamespaceSelector = nsSelector(&sub.Pods.NamespaceSelector)
		g.Spec.Selector = podSelector(&sub.Pods.PodSelector)
	default:
		fail("spec.subject", errors.New("sets neither namespaces nor pods"))
	}

	for i, r := range cnp.Spec.Ingress {
		rules, err := cnpRules(r.Name, r.Action, r.Protocols, ingressPeers(r.From), true)
		if err != nil {
			fail(fmt.Sprintf("spec.ingress[%d]", i), err)
		}
		g.Spec.Ingress = append(g.Spec.Ingress, rules...)
	}
	for i, r := range cnp.Spec.Egress {
		rules, err := cnpRules(r.Name, r.Action, r.Protocols, egressPeers(r.To), false)
		if err != nil {
			fail(fmt.Sprintf("spec.egress[%d]", i), err)
		}
		g.Spec.Egress = append(g.Spec.Egress, rules...)
	}
	if len(errs) == 0 {
		// What api would refuse is refused here, while the policy can
		// still fail closed: a Validate error later would drop it.
		probe := *g
		probe.Spec.Types = cnpTypes(cnp)
		if fe := probe.Validate(); len(fe) > 0 {
			for _, e := range fe {
				fail("translated", e)
			}
		}
	}
	if len(errs) > 0 {
		g.Spec.Ingress, g.Spec.Egress = nil, nil
		if len(cnp.Spec.Ingress) > 0 {
			g.Spec.Ingress = []api.Rule{{Action: api.Deny}}
		}
		if len(cnp.Spec.Egress) > 0 {
			g.Spec.Egress = []api.Rule{{Action: api.Deny}}
		}
	}
	g.Spec.Types = cnpTypes(cnp)
	return g, errors.Join(errs...)
}

// cnpTypes are the directions the policy has rules for, as Calico.
func cnpTypes(cnp *cnpv1.ClusterNetworkPolicy) []api.PolicyType {
	var t []api.PolicyType
	if len(cnp.Spec.Ingress) > 0 {
		t = append(t, api.PolicyTypeIngress)
	}
	if len(cnp.Spec.Egress) > 0 {
		t = append(t, api.PolicyTypeEgress)
	}
	return t
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// cnpPeer is one peer as an entity rule, or why it cannot be one.
type cnpPeer struct {
	e   []api.EntityRule // more than one for networks of both families
	err error
}

func ingressPeers(from []cnpv1.ClusterNetworkPolicyIngressPeer) []cnpPeer {
	var out []cnpPeer
	for i, p := range from {
		out = append(out, selectorPeer(fmt.Sprintf("from[%d]", i), p.Namespaces, p.Pods, 0))
	}
	return out
}

func egressPeers(to []cnpv1.ClusterNetworkPolicyEgressPeer) []cnpPeer {
	var out []cnpPeer
	for i, p := range to {
		field := fmt.Sprintf("to[%d]", i)
		others := 0
		if p.Nodes != nil {
			others++
		}
		if len(p.Networks) > 0 {
			others++
		}
		if len(p.DomainNames) > 0 {
			others++
		}
		switch {
		case p.Namespaces != nil || p.Pods != nil || others == 0:
			out = append(out, selectorPeer(field, p.Namespaces, p.Pods, others))
		case others > 1:
			out = append(out, cnpPeer{err: fmt.Errorf("%s: sets more than one of namespaces, pods, nodes, networks, domainNames", field)})
		case p.Nodes != nil:
			out = append(out, cnpPeer{err: fmt.Errorf("%s.nodes: nodes peers are not supported", field)})
		case len(p.DomainNames) > 0:
			out = append(out, cnpPeer{err: fmt.Errorf("%s.domainNames: domain name peers are not supported", field)})
		default:
			out = append(out, networksPeer(field, p.Networks))
		}
	}
	return out
}

// selectorPeer is a namespaces or pods peer; others counts the other
// fields the peer sets (it must set exactly one).
func selectorPeer(field string, ns *metav1.LabelSelector, pods *cnpv1.NamespacedPod, others int) cnpPeer {
	set := others
	if ns != nil {
		set++
	}
	if pods != nil {
		set++
	}
	switch {
	case set == 0:
		// A field of a newer version of the API that this one does not
		// know: fail closed, as the API asks.
		return cnpPeer{err: fmt.Errorf("%s: sets no peer field known to Serval", field)}
	case set > 1:
		return cnpPeer{err: fmt.Errorf("%s: sets more than one peer field", field)}
	case ns != nil:
		if err := checkSelector(ns); err != nil {
			return cnpPeer{err: fmt.Errorf("%s.namespaces: %w", field, err)}
		}
		return cnpPeer{e: []api.EntityRule{{NamespaceSelector: nsSelector(ns)}}}
	default:
		if err := firstErr(checkSelector(&pods.NamespaceSelector), checkSelector(&pods.PodSelector)); err != nil {
			return cnpPeer{err: fmt.Errorf("%s.pods: %w", field, err)}
		}
		return cnpPeer{e: []api.EntityRule{{Selector: podSelector(&pods.PodSelector), NamespaceSelector: nsSelector(&pods.NamespaceSelector)}}}
	}
}

// networksPeer is a networks peer: one entity rule per IP family, as a
// Serval rule holds networks of one family.
func networksPeer(field string, nets []cnpv1.CIDR) cnpPeer {
	var v4, v6 []string
	for j, n := range nets {
		p, err := netip.ParsePrefix(string(n))
		if err != nil {
			return cnpPeer{err: fmt.Errorf("%s.networks[%d]: %q is not a CIDR", field, j, n)}
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked().String())
		} else {
			v6 = append(v6, p.Masked().String())
		}
	}
	var out cnpPeer
	for _, fam := range [][]string{v4, v6} {
		if len(fam) > 0 {
			out.e = append(out.e, api.EntityRule{Nets: fam})
		}
	}
	return out
}

// cnpRules translates one rule: for each protocol (sorted by name, any
// protocol first), for each peer, a rule.
func cnpRules(name string, action cnpv1.ClusterNetworkPolicyRuleAction, protos []cnpv1.ClusterNetworkPolicyProtocol, peers []cnpPeer, ingress bool) ([]api.Rule, error) {
	var a api.Action
	switch action {
	case cnpv1.ClusterNetworkPolicyRuleActionAccept:
		a = api.Allow
	case cnpv1.ClusterNetworkPolicyRuleActionDeny:
		a = api.Deny
	case cnpv1.ClusterNetworkPolicyRuleActionPass:
		a = api.Pass
	default:
		return nil, fmt.Errorf("action: %q is not an action (Accept, Deny, Pass)", action)
	}
	if len(peers) == 0 {
		dir := "to"
		if ingress {
			dir = "from"
		}
		return nil, fmt.Errorf("%s: has no peers", dir)
	}
	for _, p := range peers {
		if p.err != nil {
			return nil, p.err
		}
	}
	groups, err := protocolPorts(protos)
	if err != nil {
		return nil, err
	}
	protoNames := make([]string, 0, len(groups))
	for p := range groups {
		protoNames = append(protoNames, p)
	}
	sort.Strings(protoNames)
	var meta *api.RuleMetadata
	if name != "" {
		meta = &api.RuleMetadata{Annotations: map[string]string{RuleNameAnnotation: name}}
	}
	var out []api.Rule
	for _, pn := range protoNames {
		var proto *api.Protocol
		if pn != "" {
			p := api.ProtocolFromString(pn)
			proto = &p
		}
		for _, peer := range peers {
			for _, e := range peer.e {
				r := api.Rule{Action: a, Protocol: proto, Metadata: meta}
				if ingress {
					r.Source = e
					r.Destination = api.EntityRule{Ports: groups[pn].ports}
				} else {
					e.Ports = groups[pn].ports
					r.Destination = e
				}
				out = append(out, r)
			}
		}
	}
	return out, nil
}

type portGroup struct {
	ports []api.Port
	all   bool // the whole protocol: ports are ignored
}

// protocolPorts groups the protocols' destination ports by protocol; no
// protocols is any protocol (""). A named port matches the pod's port of
// that name whatever its protocol, so it joins TCP, UDP and SCTP (Calico
// does not translate named ports yet and fails the rule closed).
func protocolPorts(protos []cnpv1.ClusterNetworkPolicyProtocol) (map[string]*portGroup, error) {
	groups := map[string]*portGroup{}
	if len(protos) == 0 {
		groups[""] = &portGroup{all: true}
		return groups, nil
	}
	add := func(proto string, port *api.Port) {
		g := groups[proto]
		if g == nil {
			g = &portGroup{}
			groups[proto] = g
		}
		switch {
		case g.all:
		case port == nil:
			g.all, g.ports = true, nil
		default:
			g.ports = append(g.ports, *port)
		}
	}
	for i, p := range protos {
		set := 0
		for _, b := range []bool{p.TCP != nil, p.UDP != nil, p.SCTP != nil, p.DestinationNamedPort != ""} {
			if b {
				set++
			}
		}
		if set != 1 {
			return nil, fmt.Errorf("protocols[%d]: sets %d of tcp, udp, sctp, destinationNamedPort (exactly one is needed)", i, set)
		}
		if p.DestinationNamedPort != "" {
			np := api.NamedPort(p.DestinationNamedPort)
			for _, proto := range []string{"SCTP", "TCP", "UDP"} {
				add(proto, &np)
			}
			continue
		}
		proto, dp := "TCP", (*cnpv1.Port)(nil)
		switch {
		case p.TCP != nil:
			dp = p.TCP.DestinationPort
		case p.UDP != nil:
			proto, dp = "UDP", p.UDP.DestinationPort
		default:
			proto, dp = "SCTP", p.SCTP.DestinationPort
		}
		port, err := cnpPort(dp)
		if err != nil {
			return nil, fmt.Errorf("protocols[%d].%s.destinationPort: %w", i, map[string]string{"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}[proto], err)
		}
		add(proto, port)
	}
	return groups, nil
}

// cnpPort is a port or a range; nil (and a port that sets neither) is
// every port, as Calico.
func cnpPort(p *cnpv1.Port) (*api.Port, error) {
	switch {
	case p == nil:
		return nil, nil
	case p.Number != 0 && p.Range != nil:
		return nil, errors.New("sets both number and range")
	case p.Number != 0:
		if p.Number < 1 || p.Number > 65535 {
			return nil, fmt.Errorf("%d is not a port (1-65535)", p.Number)
		}
		port := api.SinglePort(int(p.Number))
		return &port, nil
	case p.Range != nil:
		s, e := p.Range.Start, p.Range.End
		if s < 1 || e > 65535 || s > e {
			return nil, fmt.Errorf("%d-%d is not a port range (1-65535, start before end)", s, e)
		}
		port := api.PortRange(int(s), int(e))
		return &port, nil
	}
	return nil, nil
}
