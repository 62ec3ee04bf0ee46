package calc

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// recorder is a hoststate.Callbacks that renders every call as one line of
// text. Set IDs are hashes, so it names sets by the selector they stand
// for, learned from the graph when the set is first reported.
type recorder struct {
	g     *Graph
	lines []string
	names map[string]string
	// order checks the hoststate contract as calls arrive.
	sets, policies, profiles map[string]bool
	violations               []string
}

func newRecorder() *recorder {
	return &recorder{names: map[string]string{}, sets: map[string]bool{}, policies: map[string]bool{}, profiles: map[string]bool{}}
}

func (r *recorder) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) setName(id string) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	return "?" + id
}

func (r *recorder) setNames(ids []string) string {
	var out []string
	for _, id := range ids {
		out = append(out, r.setName(id))
		if !r.sets[id] {
			r.violations = append(r.violations, "rule refers to set not yet sent: "+r.setName(id))
		}
	}
	return strings.Join(out, "|")
}

func members(ms []hoststate.IPSetMember) string {
	var out []string
	for _, m := range ms {
		if m.Port != 0 {
			out = append(out, fmt.Sprintf("%s,%d:%d", m.Prefix, m.Protocol, m.Port))
		} else {
			out = append(out, m.Prefix.String())
		}
	}
	return strings.Join(out, " ")
}

func (r *recorder) OnIPSetUpdate(s hoststate.IPSet) {
	name := "?" + s.ID
	if set := r.g.sets[s.ID]; set != nil {
		name = "s:" + set.sel.String()
		if set.portName != "" {
			name = fmt.Sprintf("n:%s:%d:%s", set.sel.String(), set.proto, set.portName)
		}
	}
	r.names[s.ID] = name
	r.sets[s.ID] = true
	r.add("set %s = [%s]", name, members(s.Members))
}

func (r *recorder) OnIPSetDelta(id string, added, removed []hoststate.IPSetMember) {
	r.add("set %s +[%s] -[%s]", r.setName(id), members(added), members(removed))
}

func (r *recorder) OnIPSetRemove(id string) {
	delete(r.sets, id)
	r.add("set-remove %s", r.setName(id))
}

func u8(p *uint8) string { return fmt.Sprint(*p) }

func ports(ps []hoststate.PortRange) string {
	var out []string
	for _, p := range ps {
		if p.First == p.Last {
			out = append(out, fmt.Sprint(p.First))
		} else {
			out = append(out, fmt.Sprintf("%d-%d", p.First, p.Last))
		}
	}
	return strings.Join(out, ",")
}

func nets(ns []netip.Prefix) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String())
	}
	return strings.Join(out, ",")
}

func (r *recorder) rule(x hoststate.Rule) string {
	f := []string{string(x.Action)}
	add := func(cond bool, k, v string) {
		if cond {
			f = append(f, k+"="+v)
		}
	}
	add(x.IPVersion != 0, "ipv", fmt.Sprint(x.IPVersion))
	add(x.Protocol != nil, "proto", fmt.Sprint(deref(x.Protocol)))
	add(x.NotProtocol != nil, "!proto", fmt.Sprint(deref(x.NotProtocol)))
	add(x.ICMPType != nil, "icmp", fmt.Sprint(deref(x.ICMPType)))
	add(x.ICMPCode != nil, "code", fmt.Sprint(deref(x.ICMPCode)))
	add(x.NotICMPType != nil, "!icmp", fmt.Sprint(deref(x.NotICMPType)))
	add(x.NotICMPCode != nil, "!code", fmt.Sprint(deref(x.NotICMPCode)))
	add(len(x.SrcNets) > 0, "src", nets(x.SrcNets))
	add(len(x.NotSrcNets) > 0, "!src", nets(x.NotSrcNets))
	add(len(x.DstNets) > 0, "dst", nets(x.DstNets))
	add(len(x.NotDstNets) > 0, "!dst", nets(x.NotDstNets))
	add(len(x.SrcIPSetIDs) > 0, "srcsets", r.setNames(x.SrcIPSetIDs))
	add(len(x.NotSrcIPSetIDs) > 0, "!srcsets", r.setNames(x.NotSrcIPSetIDs))
	add(len(x.DstIPSetIDs) > 0, "dstsets", r.setNames(x.DstIPSetIDs))
	add(len(x.NotDstIPSetIDs) > 0, "!dstsets", r.setNames(x.NotDstIPSetIDs))
	add(len(x.SrcPorts) > 0, "sport", ports(x.SrcPorts))
	add(len(x.NotSrcPorts) > 0, "!sport", ports(x.NotSrcPorts))
	add(len(x.DstPorts) > 0, "dport", ports(x.DstPorts))
	add(len(x.NotDstPorts) > 0, "!dport", ports(x.NotDstPorts))
	add(len(x.SrcNamedPortIPSetIDs) > 0, "snamed", r.setNames(x.SrcNamedPortIPSetIDs))
	add(len(x.NotSrcNamedPortIPSetIDs) > 0, "!snamed", r.setNames(x.NotSrcNamedPortIPSetIDs))
	add(len(x.DstNamedPortIPSetIDs) > 0, "dnamed", r.setNames(x.DstNamedPortIPSetIDs))
	add(len(x.NotDstNamedPortIPSetIDs) > 0, "!dnamed", r.setNames(x.NotDstNamedPortIPSetIDs))
	return strings.Join(f, " ")
}

func deref(p *uint8) any {
	if p == nil {
		return nil
	}
	return *p
}

func (r *recorder) rules(rs []hoststate.Rule) string {
	var out []string
	for _, x := range rs {
		out = append(out, r.rule(x))
	}
	return strings.Join(out, "; ")
}

func pid(id hoststate.PolicyID) string { return id.Tier + "/" + id.Kind + "/" + id.Name }

func (r *recorder) OnPolicyUpdate(p hoststate.Policy) {
	flags := ""
	if p.Untracked {
		flags += " untracked"
	}
	if p.PreDNAT {
		flags += " prednat"
	}
	if p.ApplyOnForward {
		flags += " forward"
	}
	r.policies[pid(p.ID)] = true
	r.add("policy %s in=[%s] out=[%s]%s", pid(p.ID), r.rules(p.InboundRules), r.rules(p.OutboundRules), flags)
}

func (r *recorder) OnPolicyRemove(id hoststate.PolicyID) {
	delete(r.policies, pid(id))
	r.add("policy-remove %s", pid(id))
}

func (r *recorder) OnProfileUpdate(p hoststate.Profile) {
	r.profiles[p.Name] = true
	r.add("profile %s in=[%s] out=[%s]", p.Name, r.rules(p.InboundRules), r.rules(p.OutboundRules))
}

func (r *recorder) OnProfileRemove(name string) {
	delete(r.profiles, name)
	r.add("profile-remove %s", name)
}

func (r *recorder) tiers(ts []hoststate.TierPolicies) string {
	var out []string
	for _, t := range ts {
		var in, eg []string
		for _, p := range t.IngressPolicies {
			in = append(in, p.Name)
			if !r.policies[pid(p)] {
				r.violations = append(r.violations, "endpoint uses policy not yet sent: "+pid(p))
			}
		}
		for _, p := range t.EgressPolicies {
			eg = append(eg, p.Name)
			if !r.policies[pid(p)] {
				r.violations = append(r.violations, "endpoint uses policy not yet sent: "+pid(p))
			}
		}
		out = append(out, fmt.Sprintf("%s(%s){in:%s out:%s}", t.Name, t.DefaultAction, strings.Join(in, ","), strings.Join(eg, ",")))
	}
	return strings.Join(out, " ")
}

func (r *recorder) checkProfiles(names []string) {
	for _, n := range names {
		if !r.profiles[n] {
			r.violations = append(r.violations, "endpoint uses profile not yet sent: "+n)
		}
	}
}

func (r *recorder) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) {
	r.checkProfiles(ep.ProfileIDs)
	r.add("wep %s if=%s v4=[%s] v6=[%s] tiers=[%s] profiles=[%s]", ep.ID, ep.InterfaceName, nets(ep.IPv4Nets), nets(ep.IPv6Nets),
		r.tiers(ep.Tiers), strings.Join(ep.ProfileIDs, ","))
}

func (r *recorder) OnWorkloadEndpointRemove(id hoststate.EndpointID) { r.add("wep-remove %s", id) }

func (r *recorder) OnHostEndpointUpdate(ep hoststate.HostEndpoint) {
	r.checkProfiles(ep.ProfileIDs)
	var ips []string
	for _, a := range ep.ExpectedIPs {
		ips = append(ips, a.String())
	}
	r.add("hep %s if=%s ips=[%s] tiers=[%s] untracked=[%s] prednat=[%s] forward=[%s] profiles=[%s]", ep.ID, ep.InterfaceName,
		strings.Join(ips, ","), r.tiers(ep.Tiers), r.tiers(ep.UntrackedTiers), r.tiers(ep.PreDNATTiers), r.tiers(ep.ForwardTiers),
		strings.Join(ep.ProfileIDs, ","))
}

func (r *recorder) OnHostEndpointRemove(id hoststate.EndpointID) { r.add("hep-remove %s", id) }

func (r *recorder) OnIPPoolUpdate(name string, p hoststate.IPPool) {
	r.add("pool %s %s nat=%v disabled=%v", name, p.CIDR, p.NATOutgoing, p.Disabled)
}

func (r *recorder) OnIPPoolRemove(name string)        { r.add("pool-remove %s", name) }
func (r *recorder) OnLocalBlockUpdate(c netip.Prefix) { r.add("block %s", c) }
func (r *recorder) OnLocalBlockRemove(c netip.Prefix) { r.add("block-remove %s", c) }
func (r *recorder) OnInSync()                         { r.add("insync") }
func (r *recorder) OnConfigUpdate(c hoststate.Config) {
	pp := func(ps []hoststate.ProtoPort) string {
		var out []string
		for _, p := range ps {
			s := fmt.Sprintf("%d:%d", p.Protocol, p.Port)
			if p.Net.IsValid() {
				s += "@" + p.Net.String()
			}
			out = append(out, s)
		}
		return strings.Join(out, ",")
	}
	r.add("config prefixes=%s toHost=%s in=%s out=%s log=%s", strings.Join(c.InterfacePrefixes, ","),
		c.DefaultEndpointToHostAction, pp(c.FailsafeInboundHostPorts), pp(c.FailsafeOutboundHostPorts), c.LogPrefix)
}

// take returns the lines recorded since the last take, sorted.
func (r *recorder) take() []string {
	out := r.lines
	r.lines = nil
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// Resource builders.

const host = "host1"

func labels(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func mod[T any](v T, f func(T)) T { f(v); return v }

func wep(ns, name, node, lbls string, ips ...string) *api.WorkloadEndpoint {
	w := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"}}
	w.Name, w.Namespace, w.Labels = name, ns, labels(lbls)
	w.Spec = api.WorkloadEndpointSpec{Node: node, Orchestrator: "k8s", Pod: name, Endpoint: "eth0",
		InterfaceName: "cali" + name, IPNetworks: ips}
	return w
}

func hep(name, node, lbls, iface string, ips ...string) *api.HostEndpoint {
	h := &api.HostEndpoint{TypeMeta: api.TypeMeta{Kind: "HostEndpoint"}}
	h.Name, h.Labels = name, labels(lbls)
	h.Spec = api.HostEndpointSpec{Node: node, InterfaceName: iface, ExpectedIPs: ips}
	return h
}

func netset(ns, name, lbls string, nets ...string) api.Resource {
	if ns == "" {
		s := &api.GlobalNetworkSet{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkSet"}}
		s.Name, s.Labels, s.Spec.Nets = name, labels(lbls), nets
		return s
	}
	s := &api.NetworkSet{TypeMeta: api.TypeMeta{Kind: "NetworkSet"}}
	s.Name, s.Namespace, s.Labels, s.Spec.Nets = name, ns, labels(lbls), nets
	return s
}

func gnp(name, sel string, f func(*api.GlobalNetworkPolicySpec)) *api.GlobalNetworkPolicy {
	p := &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy"}}
	p.Name, p.Spec.Selector = name, sel
	if f != nil {
		f(&p.Spec)
	}
	p.SetDefaults()
	return p
}

func np(ns, name, sel string, f func(*api.NetworkPolicySpec)) *api.NetworkPolicy {
	p := &api.NetworkPolicy{TypeMeta: api.TypeMeta{Kind: "NetworkPolicy"}}
	p.Name, p.Namespace, p.Spec.Selector = name, ns, sel
	if f != nil {
		f(&p.Spec)
	}
	p.SetDefaults()
	return p
}

func profileRes(name, lbls string, f func(*api.ProfileSpec)) *api.Profile {
	p := &api.Profile{TypeMeta: api.TypeMeta{Kind: "Profile"}}
	p.Name, p.Spec.LabelsToApply = name, labels(lbls)
	if f != nil {
		f(&p.Spec)
	}
	return p
}

func tierRes(name string, order float64, def api.Action) *api.Tier {
	t := &api.Tier{TypeMeta: api.TypeMeta{Kind: "Tier"}}
	t.Name, t.Spec.Order, t.Spec.DefaultAction = name, &order, &def
	return t
}

func ptr[T any](v T) *T { return &v }

func proto(s string) *api.Protocol { p := api.ProtocolFromString(s); return &p }

func ingress(rs ...api.Rule) func(*api.GlobalNetworkPolicySpec) {
	return func(s *api.GlobalNetworkPolicySpec) { s.Ingress = rs }
}

func npIngress(rs ...api.Rule) func(*api.NetworkPolicySpec) {
	return func(s *api.NetworkPolicySpec) { s.Ingress = rs }
}

func allowFrom(sel string) api.Rule {
	return api.Rule{Action: api.Allow, Source: api.EntityRule{Selector: sel}}
}

// change is one update: obj added or modified, or deleted when del.
type change struct {
	obj api.Resource
	del bool
}

func del(obj api.Resource) change { return change{obj: obj, del: true} }

func toUpdates(objs []any) []datastore.Update {
	var us []datastore.Update
	for _, o := range objs {
		var c change
		switch x := o.(type) {
		case change:
			c = x
		case api.Resource:
			c = change{obj: x}
		default:
			panic(fmt.Sprintf("bad test input %T", o))
		}
		t := datastore.Modified
		if c.del {
			t = datastore.Deleted
		}
		us = append(us, datastore.Update{Type: t, Key: api.KeyOf(c.obj), Object: c.obj})
	}
	return us
}

// run delivers initial, then InSync, then each later batch; it returns the
// lines of the last step and the recorder.
func run(initial []any, steps ...[]any) ([]string, *recorder) {
	rec := newRecorder()
	g := New(host, rec, nil)
	rec.g = g
	g.OnStatus(datastore.ResyncInProgress)
	g.OnUpdates(toUpdates(initial))
	g.OnStatus(datastore.InSync)
	for _, s := range steps {
		rec.take()
		g.OnUpdates(toUpdates(s))
	}
	return rec.take(), rec
}

func contains(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}
