package calc

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"sort"
	"strconv"

	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/selector"
)

// setSpec defines an IP set: the entities a selector matches, or, for a
// named-port set, the (address, protocol, port) of their port of that name
// and protocol.
type setSpec struct {
	id       string
	sel      selector.Selector
	portName string // "" for a selector set
	proto    uint8  // the named port's protocol
}

func selectorSetSpec(sel selector.Selector) setSpec {
	return setSpec{id: sel.UniqueID(), sel: sel}
}

func namedPortSetSpec(sel selector.Selector, port string, proto uint8) setSpec {
	// Like Calico: a hash of the selector's ID, protocol and port name, with
	// its own prefix so that it can never collide with a selector set.
	sum := sha256.Sum224([]byte("n:" + sel.UniqueID() + "," + strconv.Itoa(int(proto)) + "," + port))
	return setSpec{id: "n:" + base64.RawURLEncoding.EncodeToString(sum[:]), sel: sel, portName: port, proto: proto}
}

// ipSet is an active set: referenced by at least one active policy or
// profile rule. Its members are counted, because two entities may hold the
// same address (a workload moving, a network set covering a workload).
type ipSet struct {
	setSpec
	hint    hint
	refs    int
	members map[memberKey]int32
	// pending holds the changes not yet reported (+1 added, -1 removed);
	// only kept once the set has been reported whole.
	pending map[hoststate.IPSetMember]int8
	emitted bool
	// stamp deduplicates the set while collecting candidates for one
	// endpoint (see Graph.addToSets).
	stamp uint64
}

// matches reports whether the entity belongs in the set.
func (s *ipSet) matches(ep *entity) bool {
	if !s.sel.EvaluateLabels(selector.MapLabels(ep.labels)) {
		return false
	}
	if s.portName == "" {
		return len(ep.nets) > 0
	}
	for _, p := range ep.ports {
		if p.name == s.portName && p.proto == s.proto {
			return true
		}
	}
	return false
}

// contribution calls f for each member the entity gives the set.
func (s *ipSet) contribution(ep *entity, f func(hoststate.IPSetMember)) {
	if s.portName == "" {
		for _, n := range ep.nets {
			f(hoststate.IPSetMember{Prefix: n})
		}
		return
	}
	for _, p := range ep.ports {
		if p.name != s.portName || p.proto != s.proto {
			continue
		}
		for _, n := range ep.nets {
			f(hoststate.IPSetMember{Prefix: n, Protocol: p.proto, Port: p.port})
		}
	}
}

// memberKey is an IP set member packed for a map key: 22 bytes where
// hoststate.IPSetMember takes 40 (a netip.Prefix carries a zone pointer).
// At 100,000 remote endpoints the sets hold hundreds of thousands.
type memberKey struct {
	addr             [16]byte
	fam, bits, proto uint8 // fam: 4 or 6 (0: no valid prefix)
	port             uint16
}

func packMember(m hoststate.IPSetMember) memberKey {
	k := memberKey{proto: m.Protocol, port: m.Port}
	a := m.Prefix.Addr()
	switch {
	case !m.Prefix.IsValid():
	case a.Is4():
		b := a.As4()
		copy(k.addr[:], b[:])
		k.fam, k.bits = 4, uint8(m.Prefix.Bits())
	default:
		k.addr, k.fam, k.bits = a.As16(), 6, uint8(m.Prefix.Bits())
	}
	return k
}

func (k memberKey) member() hoststate.IPSetMember {
	m := hoststate.IPSetMember{Protocol: k.proto, Port: k.port}
	switch k.fam {
	case 4:
		m.Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte(k.addr[:4])), int(k.bits))
	case 6:
		m.Prefix = netip.PrefixFrom(netip.AddrFrom16(k.addr), int(k.bits))
	}
	return m
}

func (s *ipSet) add(m hoststate.IPSetMember) {
	k := packMember(m)
	s.members[k]++
	if s.members[k] == 1 && s.emitted {
		s.note(m, 1)
	}
}

func (s *ipSet) remove(m hoststate.IPSetMember) {
	k := packMember(m)
	n, ok := s.members[k]
	if !ok {
		return
	}
	if n > 1 {
		s.members[k] = n - 1
		return
	}
	delete(s.members, k)
	if s.emitted {
		s.note(m, -1)
	}
}

func (s *ipSet) note(m hoststate.IPSetMember, d int8) {
	if s.pending == nil {
		s.pending = map[hoststate.IPSetMember]int8{}
	}
	if v := s.pending[m] + d; v == 0 {
		delete(s.pending, m) // removed and re-added: no change
	} else {
		s.pending[m] = v
	}
}

func (s *ipSet) setType() hoststate.IPSetType {
	if s.portName != "" {
		return hoststate.IPSetNetPorts
	}
	return hoststate.IPSetNets
}

func (s *ipSet) memberList() []hoststate.IPSetMember {
	out := make([]hoststate.IPSetMember, 0, len(s.members))
	for k := range s.members {
		out = append(out, k.member())
	}
	sortMembers(out)
	return out
}

func sortMembers(ms []hoststate.IPSetMember) {
	sort.Slice(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c < 0
		}
		if a.Prefix.Bits() != b.Prefix.Bits() {
			return a.Prefix.Bits() < b.Prefix.Bits()
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.Port < b.Port
	})
}

// candidates calls f for every entity that could match a selector with
// hint h: those indexed under the hint's label, or all of them.
func (g *Graph) candidates(h hint, f func(*entity)) {
	switch {
	case h.ok && h.hasValue:
		for ls := range g.labelIdx[h.key][h.value] {
			for ep := range ls.members {
				f(ep)
			}
		}
	case h.ok:
		for _, lss := range g.labelIdx[h.key] {
			for ls := range lss {
				for ep := range ls.members {
					f(ep)
				}
			}
		}
	default:
		for _, ep := range g.entities {
			f(ep)
		}
	}
}

// activateSet creates the set and computes its members.
func (g *Graph) activateSet(spec setSpec) *ipSet {
	s := &ipSet{setSpec: spec, hint: selectorHint(spec.sel.String()), members: map[memberKey]int32{}}
	g.sets[spec.id] = s
	g.indexSet(s, true)
	g.candidates(s.hint, func(ep *entity) {
		if s.matches(ep) {
			ep.sets = append(ep.sets, s)
			s.contribution(ep, s.add)
		}
	})
	return s
}

// deactivateSet forgets the set and every entity's membership in it.
func (g *Graph) deactivateSet(s *ipSet) {
	g.candidates(s.hint, func(ep *entity) {
		for i, x := range ep.sets {
			if x == s {
				ep.sets = append(ep.sets[:i], ep.sets[i+1:]...)
				break
			}
		}
	})
	g.indexSet(s, false)
	delete(g.sets, s.id)
}

func (g *Graph) indexSet(s *ipSet, add bool) {
	h := s.hint
	switch {
	case h.ok && h.hasValue:
		byV := g.setsByKV[h.key]
		if byV == nil {
			byV = map[string]map[*ipSet]struct{}{}
			g.setsByKV[h.key] = byV
		}
		addOrDel(byV, h.value, s, add)
		if len(byV) == 0 {
			delete(g.setsByKV, h.key)
		}
	case h.ok:
		addOrDel(g.setsByKey, h.key, s, add)
	default:
		if add {
			g.unhinted[s] = struct{}{}
		} else {
			delete(g.unhinted, s)
		}
	}
}

func addOrDel[K comparable, V comparable](m map[K]map[V]struct{}, k K, v V, add bool) {
	if add {
		inner := m[k]
		if inner == nil {
			inner = map[V]struct{}{}
			m[k] = inner
		}
		inner[v] = struct{}{}
		return
	}
	if inner := m[k]; inner != nil {
		delete(inner, v)
		if len(inner) == 0 {
			delete(m, k)
		}
	}
}

// addToSets puts an entity into every active set it matches. Only the sets
// indexed under one of its labels (or without a hint) are evaluated.
func (g *Graph) addToSets(ep *entity) {
	if len(g.sets) == 0 {
		return
	}
	g.stamp++
	visit := func(s *ipSet) {
		if s.stamp == g.stamp {
			return
		}
		s.stamp = g.stamp
		if s.matches(ep) {
			ep.sets = append(ep.sets, s)
			s.contribution(ep, s.add)
			g.pendingSets[s] = struct{}{}
		}
	}
	for k, v := range ep.labels {
		for s := range g.setsByKV[k][v] {
			visit(s)
		}
		for s := range g.setsByKey[k] {
			visit(s)
		}
	}
	for s := range g.unhinted {
		visit(s)
	}
}

// removeFromSets takes an entity's members out of every set it is in.
func (g *Graph) removeFromSets(ep *entity) {
	for _, s := range ep.sets {
		s.contribution(ep, s.remove)
		g.pendingSets[s] = struct{}{}
	}
	ep.sets = ep.sets[:0]
}

// incRef and decRef count the active rules using a set. A set is created
// on its first reference; one left without any is removed at the end of
// the flush (it may be referenced again in between).
func (g *Graph) incRef(spec setSpec) {
	s := g.sets[spec.id]
	if s == nil {
		s = g.activateSet(spec)
	}
	s.refs++
}

func (g *Graph) decRef(id string) {
	if s := g.sets[id]; s != nil {
		s.refs--
		if s.refs <= 0 {
			g.unusedSets[s] = struct{}{}
		}
	}
}

// memberPrefix turns an address into a one-address prefix.
func memberPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}
