package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// FakeNFT is a strict in-memory nftables for unit tests. It holds a table
// model and applies ops the way the kernel would, failing the whole
// transaction on anything the kernel would refuse: objects created twice,
// deleted while missing or in use, elements added twice or deleted while
// absent, rules naming sets or chains that do not exist. It records every
// transaction. Not safe for concurrent use.
type FakeNFT struct {
	mu     sync.Mutex // lets a test poll while Run owns the dataplane
	exists bool
	chains map[string]*fakeChain
	sets   map[string]*set

	// Transactions holds the ops of every successful Apply, in order.
	Transactions [][]Op
	// FailNext makes the next Apply fail with this error and change nothing.
	FailNext error
}

type fakeChain struct {
	base   *hook
	rules  []rule
	hashes []string
}

// NewFakeNFT returns an empty fake: no table.
func NewFakeNFT() *FakeNFT {
	return &FakeNFT{chains: map[string]*fakeChain{}, sets: map[string]*set{}}
}

// Apply implements NFT.
func (f *FakeNFT) Apply(ops []Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.FailNext; err != nil {
		f.FailNext = nil
		return err
	}
	// Work on a copy so that a failure changes nothing, like the kernel.
	c := f.clone()
	for i, o := range ops {
		if err := c.apply(o); err != nil {
			return fmt.Errorf("fake nftables: op %d (%s): %w", i, o, err)
		}
	}
	f.exists, f.chains, f.sets = c.exists, c.chains, c.sets
	f.Transactions = append(f.Transactions, slices.Clone(ops))
	return nil
}

func (f *FakeNFT) clone() *FakeNFT {
	c := &FakeNFT{exists: f.exists, chains: map[string]*fakeChain{}, sets: map[string]*set{}}
	for n, ch := range f.chains {
		c.chains[n] = &fakeChain{base: ch.base, rules: slices.Clone(ch.rules), hashes: slices.Clone(ch.hashes)}
	}
	for n, s := range f.sets {
		c.sets[n] = &set{Name: s.Name, Kind: s.Kind, Comment: s.Comment, Elems: maps.Clone(s.Elems)}
	}
	return c
}

var (
	errExists   = errors.New("exists")
	errNotFound = errors.New("no such object")
	errBusy     = errors.New("in use")
)

func (f *FakeNFT) apply(o Op) error {
	if o.Kind != OpAddTable && !f.exists {
		return errNotFound
	}
	switch o.Kind {
	case OpAddTable:
		f.exists = true
	case OpAddSet:
		if f.sets[o.Name] != nil {
			return errExists
		}
		f.sets[o.Name] = &set{Name: o.Name, Kind: o.Set.Kind, Comment: o.Set.Comment, Elems: map[elem]struct{}{}}
	case OpDelSet:
		if f.sets[o.Name] == nil {
			return errNotFound
		}
		if f.setUsed(o.Name) {
			return errBusy
		}
		delete(f.sets, o.Name)
	case OpAddElems, OpDelElems:
		s := f.sets[o.Name]
		if s == nil {
			return errNotFound
		}
		for _, e := range o.Elems {
			_, ok := s.Elems[e]
			if o.Kind == OpAddElems {
				if ok {
					return fmt.Errorf("element %s: %w", e.text(), errExists)
				}
				if s.Kind == kindRun4 || s.Kind == kindRun6 {
					for x := range s.Elems {
						if boxesOverlap(x, e) {
							return fmt.Errorf("element %s overlaps %s: %w", e.text(), x.text(), errExists)
						}
					}
				}
				if s.Kind == kindIfaceVmap {
					if f.chains[e.chain()] == nil {
						return fmt.Errorf("map element jumps to chain %s: %w", e.chain(), errNotFound)
					}
					for x := range s.Elems {
						if x.iface() == e.iface() {
							return fmt.Errorf("map key %q: %w", e.iface(), errExists)
						}
					}
				}
				s.Elems[e] = struct{}{}
			} else {
				if !ok {
					return fmt.Errorf("element %s: %w", e.text(), errNotFound)
				}
				delete(s.Elems, e)
			}
		}
	case OpAddChain:
		if f.chains[o.Name] != nil {
			return errExists
		}
		f.chains[o.Name] = &fakeChain{base: o.Base}
	case OpFlushChain:
		c := f.chains[o.Name]
		if c == nil {
			return errNotFound
		}
		c.rules, c.hashes = nil, nil
	case OpDelChain:
		c := f.chains[o.Name]
		if c == nil {
			return errNotFound
		}
		if len(c.rules) > 0 || f.chainUsed(o.Name) {
			return errBusy
		}
		delete(f.chains, o.Name)
	case OpAddRule:
		c := f.chains[o.Name]
		if c == nil {
			return errNotFound
		}
		sets, chains := ruleRefs(o.Rule)
		for _, s := range sets {
			if f.sets[s] == nil {
				return fmt.Errorf("rule refers to set %s: %w", s, errNotFound)
			}
		}
		for _, ch := range chains {
			if f.chains[ch] == nil {
				return fmt.Errorf("rule jumps to chain %s: %w", ch, errNotFound)
			}
			if f.chains[ch].base != nil {
				return fmt.Errorf("rule jumps to base chain %s", ch)
			}
		}
		c.rules = append(c.rules, *o.Rule)
		c.hashes = append(c.hashes, o.Hash)
	default:
		return fmt.Errorf("unknown op kind %d", o.Kind)
	}
	return nil
}

func (f *FakeNFT) setUsed(name string) bool {
	for _, c := range f.chains {
		for i := range c.rules {
			sets, _ := ruleRefs(&c.rules[i])
			if slices.Contains(sets, name) {
				return true
			}
		}
	}
	return false
}

func (f *FakeNFT) chainUsed(name string) bool {
	for _, c := range f.chains {
		for i := range c.rules {
			_, chains := ruleRefs(&c.rules[i])
			if slices.Contains(chains, name) {
				return true
			}
		}
	}
	for _, s := range f.sets {
		for e := range s.Elems {
			if e.chain() == name {
				return true
			}
		}
	}
	return false
}

// Read implements NFT.
func (f *FakeNFT) Read() (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := newSnapshot()
	s.Exists = f.exists
	for n, c := range f.chains {
		cs := &ChainState{Base: c.base, Hashes: slices.Clone(c.hashes), Content: make([]string, len(c.rules))}
		for i := range c.rules {
			cs.Content[i] = c.rules[i].text()
		}
		s.Chains[n] = cs
	}
	for n, st := range f.sets {
		s.Sets[n] = &SetState{Kind: st.Kind, Elems: maps.Clone(st.Elems)}
	}
	return s, nil
}

// Dump prints the fake's table in the same format as the dataplane's
// desired-state dump, for golden comparisons.
func (f *FakeNFT) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.exists {
		return ""
	}
	chains := map[string]*chain{}
	for n, c := range f.chains {
		chains[n] = &chain{Name: n, Base: c.base, Rules: c.rules}
	}
	return dumpModel(f.sets, chains)
}

// Tamper helpers simulate changes made behind the dataplane's back.

// DeleteRule removes rule i of a chain.
func (f *FakeNFT) DeleteRule(chainName string, i int) {
	if c := f.chains[chainName]; c != nil && i < len(c.rules) {
		c.rules = slices.Delete(c.rules, i, i+1)
		c.hashes = slices.Delete(c.hashes, i, i+1)
	}
}

// ReplaceRuleKeepHash replaces the statements of rule i of a chain and
// keeps its hash, as `nft replace rule ... comment "<hash>"` would.
func (f *FakeNFT) ReplaceRuleKeepHash(chainName string, i int, stmts ...stmt) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.chains[chainName]; c != nil && i < len(c.rules) {
		c.rules = slices.Clone(c.rules)
		c.rules[i] = rule{Stmts: stmts, Comment: c.rules[i].Comment}
	}
}

// DeleteSetElements removes every element of a set.
func (f *FakeNFT) DeleteSetElements(name string) {
	if s := f.sets[name]; s != nil {
		clear(s.Elems)
	}
}

// DeleteTable removes the whole table.
func (f *FakeNFT) DeleteTable() {
	f.exists = false
	clear(f.chains)
	clear(f.sets)
}

// boxesOverlap reports whether two compiled-run elements share a point:
// the kernel's concatenated interval sets refuse such elements.
func boxesOverlap(a, b elem) bool {
	return a.Proto == b.Proto && a.from.fam == b.from.fam &&
		a.from.compare(b.to) <= 0 && b.from.compare(a.to) <= 0 &&
		a.Port <= b.PortTo && b.Port <= a.PortTo
}
