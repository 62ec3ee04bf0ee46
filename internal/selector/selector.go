package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
)

// NamespaceLabel is the label that namespaced entities (workload endpoints,
// network sets) carry with the name of their namespace. global() matches
// exactly the entities without it.
const NamespaceLabel = "projectcalico.org/namespace"

// MaxLabelLength is the longest label name a selector may use, in bytes. It
// is Calico's limit, kept so that a selector valid here is valid there.
const MaxLabelLength = 512

// MaxNesting bounds the depth of parentheses. Calico has no such limit; it
// exists here so that hostile input cannot grow the parser's stack without
// bound. No hand-written selector comes near it.
const MaxNesting = 100

// Labels gives access to a set of labels that need not be a map, for
// example an endpoint's labels layered over the labels it inherits from its
// profiles.
type Labels interface {
	// Get returns the value of the label key and whether it is present.
	Get(key string) (value string, ok bool)
}

// MapLabels adapts a plain map to the Labels interface.
type MapLabels map[string]string

// Get implements Labels.
func (m MapLabels) Get(key string) (string, bool) {
	v, ok := m[key]
	return v, ok
}

// Selector is a parsed selector. It is immutable and safe for concurrent use.
type Selector interface {
	// Evaluate reports whether the labels match the selector. A nil map
	// is an entity without labels.
	Evaluate(labels map[string]string) bool

	// EvaluateLabels is Evaluate for labels that are not a plain map. A
	// nil Labels is an entity without labels.
	EvaluateLabels(labels Labels) bool

	// String returns the canonical form of the selector. Two selectors
	// that differ only in whitespace, quote style, redundant parentheses,
	// repeated negation or the order and repetition of the values of an
	// in/not in set have the same canonical form, and parsing the
	// canonical form gives back an equal selector. The format is
	// Calico's: && and || groups are always parenthesised, values are
	// double-quoted unless they contain a double quote.
	String() string

	// UniqueID is a short, stable identifier derived from String, fit for
	// naming the dataplane set that holds the selector's members. It is
	// computed as Calico computes it: "s:" followed by the unpadded
	// base64url SHA-224 of "s:" + String().
	UniqueID() string
}

// ParseError describes why a selector does not parse.
type ParseError struct {
	// Selector is the text that was parsed.
	Selector string
	// Pos is the byte offset in Selector at which the problem was found;
	// len(Selector) when the selector ends too early.
	Pos int
	// Msg says what is wrong, without the selector or the position.
	Msg string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid selector %q: at position %d: %s", e.Selector, e.Pos, e.Msg)
}

// Parse parses a selector; the empty string parses as all().
func Parse(s string) (Selector, error) {
	root, err := parse(s)
	if err != nil {
		return nil, err
	}
	// The canonical form is computed once, here, because the dataplane
	// asks for it (and for UniqueID) again and again and because doing it
	// eagerly keeps the value free of lazy-initialisation races.
	return &selector{root: root, str: string(root.appendCanonical(nil))}, nil
}

// Validate returns the error Parse would return for s, or nil.
func Validate(s string) error {
	_, err := parse(s)
	return err
}

type selector struct {
	root node
	str  string

	uidOnce sync.Once
	uid     string
}

func (s *selector) Evaluate(labels map[string]string) bool {
	return s.root.evalMap(labels)
}

func (s *selector) EvaluateLabels(labels Labels) bool {
	if labels == nil {
		// A nil map is a valid empty map; a nil interface is not, and
		// callers should not have to know the difference.
		return s.root.evalMap(nil)
	}
	return s.root.evalLabels(labels)
}

func (s *selector) String() string { return s.str }

func (s *selector) UniqueID() string {
	// Lazy, unlike String: only selectors that reach the dataplane need an
	// ID, and hashing every parsed selector would slow down validation of
	// whole manifests for nothing.
	s.uidOnce.Do(func() {
		sum := sha256.Sum224([]byte("s:" + s.str))
		s.uid = "s:" + base64.RawURLEncoding.EncodeToString(sum[:])
	})
	return s.uid
}

// UsesGlobal reports whether global() appears anywhere in the selector.
// Validation needs it: global() only means something in a rule's
// namespaceSelector, and a text search would be fooled by a quoted value.
func UsesGlobal(s Selector) bool {
	sel, ok := s.(*selector)
	return ok && usesGlobal(sel.root)
}

func usesGlobal(n node) bool {
	switch x := n.(type) {
	case globalNode, *globalNode:
		return true
	case *notNode:
		return usesGlobal(x.operand)
	case *andNode:
		for _, o := range x.operands {
			if usesGlobal(o) {
				return true
			}
		}
	case *orNode:
		for _, o := range x.operands {
			if usesGlobal(o) {
				return true
			}
		}
	}
	return false
}
