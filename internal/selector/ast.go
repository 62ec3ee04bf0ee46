package selector

import (
	"slices"
	"strings"
)

// node is one element of a parsed selector tree.
//
// Each node evaluates itself twice over: once against a plain map and once
// against the Labels interface. Keeping the map path separate means the common
// case (an endpoint's own labels) pays for a map lookup only, never for an
// interface call per label.
type node interface {
	evalMap(m map[string]string) bool
	evalLabels(l Labels) bool
	// appendCanonical writes the canonical form of the node; see
	// Selector.String for the rules it follows.
	appendCanonical(b []byte) []byte
}

type allNode struct{}

func (allNode) evalMap(map[string]string) bool { return true }
func (allNode) evalLabels(Labels) bool         { return true }
func (allNode) appendCanonical(b []byte) []byte {
	return append(b, "all()"...)
}

// globalNode matches entities that do not belong to a namespace. See the
// package documentation for why it is defined through NamespaceLabel.
type globalNode struct{}

func (globalNode) evalMap(m map[string]string) bool {
	_, ok := m[NamespaceLabel]
	return !ok
}

func (globalNode) evalLabels(l Labels) bool {
	_, ok := l.Get(NamespaceLabel)
	return !ok
}

func (globalNode) appendCanonical(b []byte) []byte {
	return append(b, "global()"...)
}

type hasNode struct{ key string }

func (n *hasNode) evalMap(m map[string]string) bool {
	_, ok := m[n.key]
	return ok
}

func (n *hasNode) evalLabels(l Labels) bool {
	_, ok := l.Get(n.key)
	return ok
}

func (n *hasNode) appendCanonical(b []byte) []byte {
	b = append(b, "has("...)
	b = append(b, n.key...)
	return append(b, ')')
}

// The comparison operators each get their own type rather than one type
// with an operator field: a switch inside Evaluate would cost a branch per
// node per evaluation, a distinct type costs nothing beyond the dynamic call
// that is needed anyway.

type eqNode struct{ key, value string }

func (n *eqNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return ok && v == n.value
}

func (n *eqNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return ok && v == n.value
}

func (n *eqNode) appendCanonical(b []byte) []byte {
	return appendComparison(b, n.key, " == ", n.value)
}

// neNode is not simply a negated eqNode in the canonical form: Calico keeps
// the two spellings apart, and so does String.
type neNode struct{ key, value string }

func (n *neNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return !ok || v != n.value
}

func (n *neNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return !ok || v != n.value
}

func (n *neNode) appendCanonical(b []byte) []byte {
	return appendComparison(b, n.key, " != ", n.value)
}

type containsNode struct{ key, value string }

func (n *containsNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return ok && strings.Contains(v, n.value)
}

func (n *containsNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return ok && strings.Contains(v, n.value)
}

func (n *containsNode) appendCanonical(b []byte) []byte {
	return appendComparison(b, n.key, " contains ", n.value)
}

type startsWithNode struct{ key, value string }

func (n *startsWithNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return ok && strings.HasPrefix(v, n.value)
}

func (n *startsWithNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return ok && strings.HasPrefix(v, n.value)
}

func (n *startsWithNode) appendCanonical(b []byte) []byte {
	return appendComparison(b, n.key, " starts with ", n.value)
}

type endsWithNode struct{ key, value string }

func (n *endsWithNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return ok && strings.HasSuffix(v, n.value)
}

func (n *endsWithNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return ok && strings.HasSuffix(v, n.value)
}

func (n *endsWithNode) appendCanonical(b []byte) []byte {
	return appendComparison(b, n.key, " ends with ", n.value)
}

// valueSet is the sorted, duplicate-free list of values of an in/not in
// operator. Sorting serves the canonical form first; membership tests use it
// too, by binary search once the set is big enough for that to pay off.
type valueSet []string

// linearSearchMax is the set size up to which a plain scan beats binary
// search: short string compares that mostly fail on the first byte are
// cheaper than the bookkeeping of halving.
const linearSearchMax = 8

func (s valueSet) contains(v string) bool {
	if len(s) <= linearSearchMax {
		for _, x := range s {
			if x == v {
				return true
			}
		}
		return false
	}
	_, found := slices.BinarySearch(s, v)
	return found
}

func newValueSet(values []string) valueSet {
	slices.Sort(values)
	return valueSet(slices.Compact(values))
}

type inNode struct {
	key    string
	values valueSet
}

func (n *inNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return ok && n.values.contains(v)
}

func (n *inNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return ok && n.values.contains(v)
}

func (n *inNode) appendCanonical(b []byte) []byte {
	return appendSet(b, n.key, " in {", n.values)
}

type notInNode struct {
	key    string
	values valueSet
}

func (n *notInNode) evalMap(m map[string]string) bool {
	v, ok := m[n.key]
	return !ok || !n.values.contains(v)
}

func (n *notInNode) evalLabels(l Labels) bool {
	v, ok := l.Get(n.key)
	return !ok || !n.values.contains(v)
}

func (n *notInNode) appendCanonical(b []byte) []byte {
	return appendSet(b, n.key, " not in {", n.values)
}

type notNode struct{ operand node }

func (n *notNode) evalMap(m map[string]string) bool { return !n.operand.evalMap(m) }
func (n *notNode) evalLabels(l Labels) bool         { return !n.operand.evalLabels(l) }

// The operand never needs parentheses of its own here: a comparison binds
// tighter than "!" in the grammar ("!a == 'b'" negates the comparison), and
// && and || nodes always print their own parentheses.
func (n *notNode) appendCanonical(b []byte) []byte {
	return n.operand.appendCanonical(append(b, '!'))
}

type andNode struct{ operands []node }

func (n *andNode) evalMap(m map[string]string) bool {
	for _, op := range n.operands {
		if !op.evalMap(m) {
			return false
		}
	}
	return true
}

func (n *andNode) evalLabels(l Labels) bool {
	for _, op := range n.operands {
		if !op.evalLabels(l) {
			return false
		}
	}
	return true
}

func (n *andNode) appendCanonical(b []byte) []byte {
	return appendJoined(b, n.operands, " && ")
}

type orNode struct{ operands []node }

func (n *orNode) evalMap(m map[string]string) bool {
	for _, op := range n.operands {
		if op.evalMap(m) {
			return true
		}
	}
	return false
}

func (n *orNode) evalLabels(l Labels) bool {
	for _, op := range n.operands {
		if op.evalLabels(l) {
			return true
		}
	}
	return false
}

func (n *orNode) appendCanonical(b []byte) []byte {
	return appendJoined(b, n.operands, " || ")
}

// appendJoined always parenthesises, even at the top level, because that is
// what Calico prints; matching it byte for byte keeps UniqueID equal to
// Calico's for the same selector.
func appendJoined(b []byte, operands []node, sep string) []byte {
	b = append(b, '(')
	for i, op := range operands {
		if i > 0 {
			b = append(b, sep...)
		}
		b = op.appendCanonical(b)
	}
	return append(b, ')')
}

func appendComparison(b []byte, key, op, value string) []byte {
	b = append(b, key...)
	b = append(b, op...)
	return appendQuoted(b, value)
}

func appendSet(b []byte, key, open string, values valueSet) []byte {
	b = append(b, key...)
	b = append(b, open...)
	for i, v := range values {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendQuoted(b, v)
	}
	return append(b, '}')
}

// appendQuoted prefers double quotes, like Calico. The language has no
// escapes, so a value holding a double quote must be single-quoted; it cannot
// also hold a single quote, because it was itself read from a literal in one
// quote style.
func appendQuoted(b []byte, v string) []byte {
	q := byte('"')
	if strings.IndexByte(v, '"') >= 0 {
		q = '\''
	}
	b = append(b, q)
	b = append(b, v...)
	return append(b, q)
}
