package calc

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/selector"
)

type entityKind uint8

const (
	kindWEP entityKind = iota + 1
	kindHEP
	kindNetSet // NetworkSet or GlobalNetworkSet
)

type namedPort struct {
	name  string
	proto uint8
	port  uint16
}

// entity is anything rule selectors match: workload and host endpoints of
// every host, and network sets. One value per key lives for as long as the
// resource does; updates change it in place so that the indexes pointing
// at it stay valid.
type entity struct {
	key       api.Key
	kind      entityKind
	local     bool              // a local endpoint: localPart is set
	namespace string            // WEPs and NetworkSets
	sa        string            // a WEP's service account
	orch      string            // a WEP's orchestrator
	own       map[string]string // shared (labelTable): never modify
	profiles  []string
	// labels is what selectors see: own labels over implicit, profile,
	// namespace and service-account labels (see flatten). Shared with
	// every entity that sees the same (labelTable): never modify.
	labels            map[string]string
	ownRef, labelsRef *sharedLabels
	nets              []netip.Prefix
	ports             []namedPort
	// sets are the active sets the entity is in.
	sets []*ipSet

	// For a local endpoint only (nil otherwise): 100,000 remote ones
	// need not carry three empty fields each, which put an entity in the
	// 288-byte size class instead of 240.
	*localPart
}

// localPart is what only a local endpoint has.
type localPart struct {
	wep      *api.WorkloadEndpoint
	hep      *api.HostEndpoint
	policies map[*policy]struct{} // the policies that select it
}

// depKeys are the profiles whose labels the entity's labels depend on.
func (e *entity) depKeys() []string {
	keys := slices.Clone(e.profiles)
	if e.namespace != "" {
		keys = append(keys, "kns."+e.namespace)
		if e.sa != "" {
			keys = append(keys, "ksa."+e.namespace+"."+e.sa)
		}
	}
	return keys
}

// flatten computes the labels selectors see, lowest precedence first:
// the namespace's labels as pcns.*, the service account's as pcsa.* (from
// the kns.<namespace> and ksa.<namespace>.<account> profiles, as Calico's
// Kubernetes mode writes them), the labelsToApply of the entity's profiles
// (the first profile listed wins), its own labels, and the implicit labels
// nobody can override (namespace, orchestrator, service account).
func (g *Graph) flatten(e *entity) {
	l := make(map[string]string, len(e.own)+4)
	if e.namespace != "" {
		l[namespaceLabelPrefix+namespaceNameLabel] = e.namespace
		if p := g.profiles["kns."+e.namespace]; p != nil {
			for k, v := range p.labels {
				l[withPrefix(k, namespaceLabelPrefix)] = v
			}
		}
		if e.sa != "" {
			l[serviceAccountLabelPrefix+namespaceNameLabel] = e.sa
			if p := g.profiles["ksa."+e.namespace+"."+e.sa]; p != nil {
				for k, v := range p.labels {
					l[withPrefix(k, serviceAccountLabelPrefix)] = v
				}
			}
		}
	}
	for i := len(e.profiles) - 1; i >= 0; i-- {
		if p := g.profiles[e.profiles[i]]; p != nil {
			maps.Copy(l, p.labels)
		}
	}
	maps.Copy(l, e.own)
	if e.namespace != "" {
		l[selector.NamespaceLabel] = e.namespace
	}
	if e.orch != "" {
		l[orchestratorLabel] = e.orch
	}
	if e.sa != "" {
		l[serviceAccountLbl] = e.sa
	}
	prev := e.labelsRef
	e.labels, e.labelsRef = g.labelSets.intern(l)
	g.labelSets.release(prev)
}

// dropLabels gives back an entity's shared label maps.
func (g *Graph) dropLabels(e *entity) {
	g.labelSets.release(e.ownRef)
	g.labelSets.release(e.labelsRef)
	e.ownRef, e.labelsRef = nil, nil
}

// withPrefix adds prefix to a label unless the profile already carries it
// (profiles written by a Calico-style controller do).
func withPrefix(k, prefix string) string {
	if strings.HasPrefix(k, prefix) {
		return k
	}
	return prefix + k
}

// index and unindex maintain the label index, the profile dependency index
// and set membership. The label index holds label maps, not entities:
// every endpoint of a deployment shares one map (labelTable), so it is
// indexed once and lists its entities.
func (g *Graph) index(e *entity) {
	if ls := e.labelsRef; ls != nil {
		if len(ls.members) == 0 {
			for k, v := range ls.m {
				byV := g.labelIdx[k]
				if byV == nil {
					byV = map[string]map[*sharedLabels]struct{}{}
					g.labelIdx[k] = byV
				}
				addOrDel(byV, v, ls, true)
			}
			if ls.members == nil {
				ls.members = map[*entity]struct{}{}
			}
		}
		ls.members[e] = struct{}{}
	}
	for _, d := range e.depKeys() {
		addOrDel(g.deps, d, e, true)
	}
	g.addToSets(e)
}

func (g *Graph) unindex(e *entity) {
	g.removeFromSets(e)
	if ls := e.labelsRef; ls != nil {
		delete(ls.members, e)
		if len(ls.members) == 0 {
			for k, v := range ls.m {
				if byV := g.labelIdx[k]; byV != nil {
					addOrDel(byV, v, ls, false)
					if len(byV) == 0 {
						delete(g.labelIdx, k)
					}
				}
			}
		}
	}
	for _, d := range e.depKeys() {
		addOrDel(g.deps, d, e, false)
	}
}

// relabel recomputes the labels of the entities depending on a profile.
func (g *Graph) relabel(profile string) {
	for _, e := range slices.Collect(maps.Keys(g.deps[profile])) {
		g.unindex(e)
		g.flatten(e)
		g.index(e)
		if e.local {
			g.dirtyLocal[e.key] = struct{}{}
			g.rematch[e.key] = struct{}{}
		}
	}
}

func parseAddrOrPrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return memberPrefix(a.Unmap()), true
	}
	return netip.Prefix{}, false
}

// entityFrom builds the entity for a resource, or nil for kinds that are
// not matched by selectors.
func (g *Graph) entityFrom(obj api.Resource) *entity {
	m := obj.GetObjectMeta()
	e := &entity{key: api.KeyOf(obj)}
	// What is kept of a remote endpoint is this entity alone, so it
	// shares what repeats: the namespace and other names, label maps.
	e.key.Namespace = intern(e.key.Namespace)
	bad := func(what, v string) {
		g.log.Warn("ignoring an invalid address", "resource", e.key.String(), "field", what, "value", v)
	}
	switch o := obj.(type) {
	case *api.WorkloadEndpoint:
		e.kind, e.namespace, e.sa, e.orch = kindWEP, intern(m.Namespace), intern(o.Spec.ServiceAccountName), intern(o.Spec.Orchestrator)
		e.profiles = internAll(o.Spec.Profiles)
		for _, n := range o.Spec.IPNetworks {
			if p, ok := parseAddrOrPrefix(n); ok {
				e.nets = append(e.nets, p)
			} else {
				bad("spec.ipNetworks", n)
			}
		}
		for _, p := range o.Spec.Ports {
			if pr, ok := p.Protocol.Number(); ok && p.Name != "" {
				e.ports = append(e.ports, namedPort{name: p.Name, proto: uint8(pr), port: p.Port})
			}
		}
		if o.Spec.Node == g.hostname {
			e.local, e.localPart = true, &localPart{wep: o}
		}
	case *api.HostEndpoint:
		e.kind = kindHEP
		e.profiles = internAll(o.Spec.Profiles)
		for _, ip := range o.Spec.ExpectedIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				e.nets = append(e.nets, memberPrefix(a.Unmap()))
			} else {
				bad("spec.expectedIPs", ip)
			}
		}
		for _, p := range o.Spec.Ports {
			if pr, ok := p.Protocol.Number(); ok && p.Name != "" {
				e.ports = append(e.ports, namedPort{name: p.Name, proto: uint8(pr), port: p.Port})
			}
		}
		if o.Spec.Node == g.hostname {
			e.local, e.localPart = true, &localPart{hep: o}
		}
	case *api.NetworkSet:
		e.kind, e.namespace = kindNetSet, intern(m.Namespace)
		e.nets = g.parseNets(e, o.Spec.Nets)
	case *api.GlobalNetworkSet:
		e.kind = kindNetSet
		e.nets = g.parseNets(e, o.Spec.Nets)
	default:
		return nil
	}
	e.own, e.ownRef = g.labelSets.intern(m.Labels)
	g.flatten(e)
	return e
}

func (g *Graph) parseNets(e *entity, nets []string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		if p, ok := parseAddrOrPrefix(n); ok {
			out = append(out, p)
		} else {
			g.log.Warn("ignoring an invalid network", "resource", e.key.String(), "value", n)
		}
	}
	return out
}

// onEntity applies an added, modified or deleted endpoint or network set.
func (g *Graph) onEntity(key api.Key, obj api.Resource) {
	old := g.entities[key]
	var nu *entity
	if obj != nil {
		nu = g.entityFrom(obj)
	}
	if old != nil {
		g.unindex(old)
		g.dropLabels(old)
		if old.local {
			g.dirtyLocal[key] = struct{}{}
			g.changeProfileRefs(old.profiles, -1)
		}
	}
	if nu == nil {
		if old != nil {
			delete(g.entities, key)
			if old.local {
				g.dropLocal(old)
			}
		}
		return
	}
	if old != nil {
		// Keep the value the indexes and policies know; take the new data.
		sets := old.sets
		was := old.localPart
		*old = *nu
		old.sets = sets
		if old.local {
			if was != nil {
				old.policies = was.policies
			}
		} else if was != nil {
			// dropLocal reads the policies that selected it.
			old.localPart = was
			g.dropLocal(old)
		}
		nu = old
	} else {
		g.entities[key] = nu
	}
	if nu.local {
		if nu.policies == nil {
			nu.policies = map[*policy]struct{}{}
		}
		g.local[key] = nu
		g.dirtyLocal[key] = struct{}{}
		g.rematch[key] = struct{}{}
		g.changeProfileRefs(nu.profiles, +1)
	}
	g.index(nu)
}

// dropLocal forgets that an entity was a local endpoint: the policies that
// selected it lose it.
func (g *Graph) dropLocal(e *entity) {
	if e.localPart != nil {
		for p := range e.policies {
			delete(p.matches, e)
			g.checkPolicies[p] = struct{}{}
		}
	}
	e.localPart = nil
	e.local = false
	delete(g.local, e.key)
	g.dirtyLocal[e.key] = struct{}{}
}
