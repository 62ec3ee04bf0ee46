package dataplane

import (
	"fmt"
	"slices"
	"strings"
)

// NFT is what the dataplane needs of nftables: run a list of operations on
// Serval's table as one atomic transaction, and read the table back. The
// kernel implementation is NewKernelNFT; FakeNFT is a strict in-memory one
// for unit tests. Implementations need not be safe for concurrent use.
type NFT interface {
	// Apply runs ops, in order, as one transaction: all or nothing.
	Apply(ops []Op) error
	// Read returns what the table holds now; Exists is false when there is
	// no table.
	Read() (*Snapshot, error)
}

// Snapshot is the table as read back: chains with the hash ids found in
// their rules' userdata, sets and maps with their elements.
type Snapshot struct {
	Exists bool
	Chains map[string]*ChainState
	Sets   map[string]*SetState
}

// ChainState is one chain as read back. Hashes holds the hash id of each
// rule in order ("" for a rule without one, such as one added by hand).
type ChainState struct {
	Base   *hook
	Hashes []string
	// Content holds a fingerprint of each rule's expressions as read back,
	// when the backend reads content (see drift.go); nil otherwise.
	Content []string
}

// SetState is one set or map as read back. Kind is 0 for a type Serval does
// not create.
type SetState struct {
	Kind  setKind
	Elems map[elem]struct{}
}

// OpKind is the kind of one table operation.
type OpKind int

const (
	OpAddTable OpKind = iota + 1
	OpAddSet
	OpDelSet
	OpAddElems
	OpDelElems
	OpAddChain
	OpFlushChain
	OpDelChain
	OpAddRule
)

// Op is one operation of a transaction.
type Op struct {
	Kind  OpKind
	Name  string // set or chain
	Set   *set   // OpAddSet: name, kind, comment (elements come in OpAddElems)
	Elems []elem // OpAddElems, OpDelElems
	Base  *hook  // OpAddChain of a base chain
	Rule  *rule  // OpAddRule
	Hash  string // OpAddRule: the rule's hash id
}

// String prints an op the way tests assert on op lists.
func (o Op) String() string {
	switch o.Kind {
	case OpAddTable:
		return "add table inet " + TableName
	case OpAddSet:
		kw := "set"
		if o.Set.Kind == kindIfaceVmap {
			kw = "map"
		}
		return "add " + kw + " " + o.Name
	case OpDelSet:
		return "delete set " + o.Name
	case OpAddElems, OpDelElems:
		parts := make([]string, len(o.Elems))
		for i, e := range o.Elems {
			parts[i] = e.text()
		}
		verb := "add"
		if o.Kind == OpDelElems {
			verb = "delete"
		}
		return fmt.Sprintf("%s element %s { %s }", verb, o.Name, strings.Join(parts, ", "))
	case OpAddChain:
		return "add chain " + o.Name
	case OpFlushChain:
		return "flush chain " + o.Name
	case OpDelChain:
		return "delete chain " + o.Name
	case OpAddRule:
		return "add rule " + o.Name + " " + o.Rule.text()
	}
	return fmt.Sprintf("op(%d)", o.Kind)
}

// maxElemsPerOp bounds one element message: netlink messages have a size
// limit, and a 100,000-member set must still load.
const maxElemsPerOp = 1000

// plan computes the ops that bring the table from have to want for the
// given chain and set names. Order follows dependencies so that every
// message is valid when the kernel reaches it: table, new sets and maps,
// set element deltas, new chains, chain contents, map elements, then
// deletions (only when deletes is true): map elements, chains, sets.
func plan(have *Snapshot, wantChains map[string]*chain, wantHashes map[string][]string, wantSets map[string]*set,
	chainNames, setNames []string, deletes bool) []Op {
	var ops []Op
	if !have.Exists {
		ops = append(ops, Op{Kind: OpAddTable})
	}
	slices.Sort(chainNames)
	slices.Sort(setNames)

	var elemAdds, elemDels, mapAdds, mapDels []Op
	var delSets []string
	for _, n := range setNames {
		w, hs := wantSets[n], have.Sets[n]
		if w == nil {
			if hs != nil && deletes {
				delSets = append(delSets, n)
			}
			continue
		}
		if hs != nil && hs.Kind != w.Kind {
			// Same name, other type (someone recreated it): replace. A
			// set in use cannot be deleted, so this waits for deletes.
			if !deletes {
				continue
			}
			ops = append(ops, Op{Kind: OpDelSet, Name: n})
			hs = nil
		}
		if hs == nil {
			ops = append(ops, Op{Kind: OpAddSet, Name: n, Set: &set{Name: n, Kind: w.Kind, Comment: w.Comment}})
			hs = &SetState{Kind: w.Kind}
		}
		var del []elem
		// Sized for a new set: a cold start adds 200,000 elements, and
		// growing the slice by doubling allocated twice that.
		add := make([]elem, 0, max(0, len(w.Elems)-len(hs.Elems)))
		for e := range w.Elems {
			if _, ok := hs.Elems[e]; !ok {
				add = append(add, e)
			}
		}
		if deletes {
			for e := range hs.Elems {
				if _, ok := w.Elems[e]; !ok {
					del = append(del, e)
				}
			}
		} else if w.Kind == kindIfaceVmap {
			// A map key may change its value only by delete + add; keys
			// are never reused for another chain, but be safe.
			for e := range hs.Elems {
				if _, ok := w.Elems[e]; !ok && slices.ContainsFunc(add, func(a elem) bool { return a.iface() == e.iface() }) {
					del = append(del, e)
				}
			}
		}
		sortElems(add)
		sortElems(del)
		if w.Kind == kindIfaceVmap {
			mapAdds = append(mapAdds, chunk(OpAddElems, n, add)...)
			mapDels = append(mapDels, chunk(OpDelElems, n, del)...)
		} else {
			// Deletions first: an interval that grew replaces the old one
			// and the two would overlap.
			elemDels = append(elemDels, chunk(OpDelElems, n, del)...)
			elemAdds = append(elemAdds, chunk(OpAddElems, n, add)...)
		}
	}
	ops = append(ops, elemDels...)
	ops = append(ops, elemAdds...)

	var newChains, ruleOps, delChains []Op
	for _, n := range chainNames {
		w, hc := wantChains[n], have.Chains[n]
		if w == nil {
			if hc != nil && deletes {
				delChains = append(delChains, Op{Kind: OpDelChain, Name: n})
			}
			continue
		}
		wh := wantHashes[n]
		if hc != nil && !sameHook(hc.Base, w.Base) {
			ruleOps = append(ruleOps, Op{Kind: OpFlushChain, Name: n})
			newChains = append(newChains, Op{Kind: OpDelChain, Name: n})
			hc = nil
		}
		if hc == nil {
			newChains = append(newChains, Op{Kind: OpAddChain, Name: n, Base: w.Base})
		} else if slices.Equal(hc.Hashes, wh) {
			continue
		} else {
			ruleOps = append(ruleOps, Op{Kind: OpFlushChain, Name: n})
		}
		for i := range w.Rules {
			ruleOps = append(ruleOps, Op{Kind: OpAddRule, Name: n, Rule: &w.Rules[i], Hash: wh[i]})
		}
	}
	// A chain whose hook changed is flushed, deleted and re-added before
	// anything else touches it.
	for _, o := range ruleOps {
		if o.Kind == OpFlushChain && slices.ContainsFunc(newChains, func(c Op) bool { return c.Kind == OpDelChain && c.Name == o.Name }) {
			ops = append(ops, o)
		}
	}
	ops = append(ops, newChains...)
	for _, o := range ruleOps {
		if o.Kind == OpFlushChain && slices.ContainsFunc(newChains, func(c Op) bool { return c.Kind == OpDelChain && c.Name == o.Name }) {
			continue
		}
		ops = append(ops, o)
	}
	ops = append(ops, mapDels...)
	ops = append(ops, mapAdds...)
	// Deleted chains are flushed first, all of them, so that jumps between
	// two chains both going away do not keep either busy.
	for _, d := range delChains {
		ops = append(ops, Op{Kind: OpFlushChain, Name: d.Name})
	}
	ops = append(ops, delChains...)
	for _, n := range delSets {
		ops = append(ops, Op{Kind: OpDelSet, Name: n})
	}
	return ops
}

func chunk(k OpKind, name string, es []elem) []Op {
	var out []Op
	for len(es) > 0 {
		n := min(len(es), maxElemsPerOp)
		out = append(out, Op{Kind: k, Name: name, Elems: es[:n:n]})
		es = es[n:]
	}
	return out
}

func sameHook(a, b *hook) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// applyToSnapshot updates a snapshot as if ops had succeeded; the
// dataplane keeps its view of the kernel this way between read-backs.
func applyToSnapshot(s *Snapshot, ops []Op) {
	for _, o := range ops {
		switch o.Kind {
		case OpAddTable:
			s.Exists = true
		case OpAddSet:
			s.Sets[o.Name] = &SetState{Kind: o.Set.Kind, Elems: map[elem]struct{}{}}
		case OpDelSet:
			delete(s.Sets, o.Name)
		case OpAddElems:
			if ss := s.Sets[o.Name]; ss != nil {
				for _, e := range o.Elems {
					ss.Elems[e] = struct{}{}
				}
			}
		case OpDelElems:
			if ss := s.Sets[o.Name]; ss != nil {
				for _, e := range o.Elems {
					delete(ss.Elems, e)
				}
			}
		case OpAddChain:
			s.Chains[o.Name] = &ChainState{Base: o.Base}
		case OpFlushChain:
			if c := s.Chains[o.Name]; c != nil {
				c.Hashes, c.Content = nil, nil
			}
		case OpDelChain:
			delete(s.Chains, o.Name)
		case OpAddRule:
			if c := s.Chains[o.Name]; c != nil {
				c.Hashes, c.Content = append(c.Hashes, o.Hash), nil
			}
		}
	}
}

func newSnapshot() *Snapshot {
	return &Snapshot{Chains: map[string]*ChainState{}, Sets: map[string]*SetState{}}
}

// ruleRefs lists the sets and chains a rule refers to, for the fake's
// reference checks.
func ruleRefs(r *rule) (sets, chains []string) {
	for _, s := range r.Stmts {
		switch s := s.(type) {
		case mSet:
			sets = append(sets, s.Set)
		case mRun:
			sets = append(sets, s.Set)
		case sVmap:
			sets = append(sets, s.Map)
		case verdict:
			if s.Chain != "" {
				chains = append(chains, s.Chain)
			}
		}
	}
	return sets, chains
}
