package dataplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// --- apply ---

// Resync makes the next Apply read the kernel back and repair whatever
// differs from the desired state.
func (d *Dataplane) Resync() { d.needRead = true; d.fullDiff = true }

// Stats returns figures about the last Apply.
func (d *Dataplane) Stats() ApplyStats { return d.stats }

// Apply programs everything that changed since the last successful Apply:
// nftables in one transaction, then routes, then interface settings. On
// failure the changes stay pending and the next Apply reads the kernel back
// first.
func (d *Dataplane) Apply(ctx context.Context) error {
	start := d.clock.Now()
	d.drain()
	if err := ctx.Err(); err != nil {
		return err
	}
	_, herr := d.readHost()
	nerr := d.applyNFT()
	var rerr, ierr error
	if d.routes != nil {
		rerr = d.routes.apply(d.inSync)
	}
	if d.ifaces != nil {
		ierr = d.ifaces.apply()
	}
	d.stats.Duration = d.clock.Now().Sub(start)
	return errors.Join(herr, nerr, rerr, ierr)
}

func (d *Dataplane) drain() {
	d.mu.Lock()
	fs := d.pending
	d.pending = nil
	d.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (d *Dataplane) applyNFT() error {
	if d.needRead {
		s, err := d.nft.Read()
		if err != nil {
			return fmt.Errorf("reading nftables table %s back: %w", TableName, err)
		}
		d.markDrift(s)
		d.have = s
		d.needRead = false
		d.fullDiff = true
		d.lastResync = d.clock.Now()
	}
	d.render()

	var chainNames, setNames []string
	if d.fullDiff {
		chainNames = unionKeys(d.chains, d.have.Chains)
		setNames = unionKeys(d.sets, d.have.Sets)
	} else {
		chainNames = slices.Collect(maps.Keys(d.dirtyChains))
		setNames = slices.Collect(maps.Keys(d.dirtySets))
	}
	ops := plan(d.have, d.chains, d.hashes, d.sets, chainNames, setNames, d.inSync)
	d.stats.Ops, d.stats.Elements = len(ops), 0
	for _, o := range ops {
		d.stats.Elements += len(o.Elems)
	}
	fill := splitFill(ops, d.fillBatch)
	if len(fill) > 0 {
		var filled []Op
		for _, t := range fill {
			if err := d.nft.Apply(t); err != nil {
				// Some new sets may be in the kernel, filled or not: no
				// rule refers to them, and the read-back finds them.
				d.needRead = true
				return fmt.Errorf("programming nftables table %s (filling new sets, %d ops): %w", TableName, len(t), err)
			}
			filled = append(filled, t...)
		}
		d.recordApplied(filled, setNames)
		ops = ops[len(filled):]
	}
	if len(ops) > 0 {
		if err := d.nft.Apply(ops); err != nil {
			d.needRead = true
			return fmt.Errorf("programming nftables table %s (%d ops): %w", TableName, len(ops), err)
		}
		d.recordApplied(ops, setNames)
	}
	clear(d.dirtyChains)
	clear(d.dirtySets)
	d.fullDiff = false
	return nil
}

// defaultFillBatch is the most elements a set-filling transaction carries.
// The netlink library builds every message of a transaction in memory
// before sending any; at a cold start with 100,000 remote endpoints that
// was 160,000 elements at once, tens of MB alive together on top of the
// heap they were compiled from.
const defaultFillBatch = 20_000

// splitFill takes from the front of ops, when they carry more than
// batch elements, the table's creation and the creation and filling of
// the sets this plan makes (not those it replaces, nor verdict maps), in
// transactions of at most about batch elements each; the rest of ops
// stays one transaction.
// No rule refers to a set before the rest runs, so each transaction
// leaves the kernel consistent, and what packets see still changes in
// one step: the rest. Ops are reordered so the fill comes first, which
// plan's order allows (table, sets and set elements before any chain).
func splitFill(ops []Op, batch int) [][]Op {
	total := 0
	for _, o := range ops {
		total += len(o.Elems)
	}
	if total <= batch {
		return nil
	}
	fresh, replaced := map[string]bool{}, map[string]bool{}
	for _, o := range ops {
		switch o.Kind {
		case OpAddSet:
			// A verdict map's elements name chains, which come later.
			fresh[o.Name] = o.Set.Kind != kindIfaceVmap
		case OpDelSet:
			replaced[o.Name] = true
		}
	}
	isFill := func(o Op) bool {
		switch o.Kind {
		case OpAddTable:
			return true
		case OpAddSet, OpAddElems:
			return fresh[o.Name] && !replaced[o.Name]
		}
		return false
	}
	var fill, rest []Op
	for _, o := range ops {
		if isFill(o) {
			fill = append(fill, o)
		} else {
			rest = append(rest, o)
		}
	}
	n := 0
	for _, o := range fill {
		n += len(o.Elems)
	}
	if n == 0 {
		return nil
	}
	copy(ops, fill)
	copy(ops[len(fill):], rest)
	var out [][]Op
	start, elems := 0, 0
	for i, o := range fill {
		if elems > 0 && elems+len(o.Elems) > batch {
			out = append(out, fill[start:i:i])
			start, elems = i, 0
		}
		elems += len(o.Elems)
	}
	out = append(out, fill[start:len(fill):len(fill)])
	// The slices above alias fill, which the caller no longer needs; the
	// caller resumes at ops[len(fill):].
	return out
}

// recordApplied brings the snapshot of the kernel up to date after a
// committed transaction. A set the kernel now holds exactly as desired
// shares its elements with the desired set instead of keeping a copy (at
// 100,000 remote endpoints the compiled runs' sets are 200,000 elements);
// a set made by this transaction is shared from the start, so the copy
// is never built.
func (d *Dataplane) recordApplied(ops []Op, setNames []string) {
	fresh := map[string]bool{}
	for _, o := range ops {
		if o.Kind == OpAddSet && d.sets[o.Name] != nil && d.sets[o.Name].Kind == o.Set.Kind {
			fresh[o.Name] = true
		}
	}
	rest := ops
	if len(fresh) > 0 {
		rest = make([]Op, 0, len(ops))
		for _, o := range ops {
			switch o.Kind {
			case OpAddSet, OpAddElems, OpDelElems:
				if fresh[o.Name] {
					continue
				}
			}
			rest = append(rest, o)
		}
	}
	applyToSnapshot(d.have, rest)
	for n := range fresh {
		// Made and filled by this transaction: exactly the desired set.
		w := d.sets[n]
		d.have.Sets[n] = &SetState{Kind: w.Kind, Elems: w.Elems}
		w.shared = true
	}
	for _, n := range setNames {
		w, hs := d.sets[n], d.have.Sets[n]
		// Every desired element was added; the same size means nothing
		// else is left (deletions wait for InSync).
		if w != nil && hs != nil && !w.shared && hs.Kind == w.Kind && len(hs.Elems) == len(w.Elems) {
			hs.Elems = w.Elems
			w.shared = true
		}
	}
}

// elemsToChange returns a desired set's elements to change in place,
// copying them first if the snapshot shares them.
func (d *Dataplane) elemsToChange(name string) map[elem]struct{} {
	s := d.sets[name]
	if s.shared {
		s.Elems = maps.Clone(s.Elems)
		s.shared = false
	}
	return s.Elems
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	out := make([]string, 0, len(a)+len(b))
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}
