package calc

import (
	"strings"

	"github.com/servalnet/serval/internal/selector"
)

// The functions in this file work on the canonical text of a selector
// (selector.Selector.String). The selector package keeps its syntax tree
// private, and the graph needs two things from it that the package does not
// offer: Calico's label-prefix rewrite of namespace and service-account
// selectors, and an index hint. The canonical form is regular enough to make
// both safe: values are always quoted (no escapes), operators are spaced,
// and every && or || group is parenthesised.

// Label prefixes Calico uses for the labels endpoints inherit from their
// namespace and service account, so that a rule's namespaceSelector and
// serviceAccounts.selector can be folded into one endpoint selector.
const (
	namespaceLabelPrefix      = "pcns."
	serviceAccountLabelPrefix = "pcsa."
	// namespaceNameLabel is the label every namespace carries with its own
	// name (inherited by endpoints as pcns.projectcalico.org/name).
	namespaceNameLabel = "projectcalico.org/name"
	orchestratorLabel  = "projectcalico.org/orchestrator"
	serviceAccountLbl  = "projectcalico.org/serviceaccount"
)

// prefixLabels returns the canonical selector text with every label name
// prefixed, as Calico does to a namespaceSelector ("pcns.") or a service
// account selector ("pcsa."). When nsSemantics is set, all() becomes "in any
// namespace" and global() "in no namespace", as in a namespaceSelector.
func prefixLabels(canon, prefix string, nsSemantics bool) string {
	var b strings.Builder
	expectLabel := true // at the start of a comparison
	for i := 0; i < len(canon); {
		c := canon[i]
		switch {
		case c == '"' || c == '\'':
			j := strings.IndexByte(canon[i+1:], c)
			if j < 0 {
				b.WriteString(canon[i:]) // cannot happen in canonical text
				return b.String()
			}
			b.WriteString(canon[i : i+j+2])
			i += j + 2
			continue
		case c == '(' || c == '{' || c == ',':
			expectLabel = c == '('
		case c == '!':
			if i+1 < len(canon) && canon[i+1] == '=' {
				b.WriteString("!=")
				i += 2
				continue
			}
			expectLabel = true
		case c == '&' || c == '|':
			expectLabel = true
		case c == ' ' || c == ')' || c == '}' || c == '=':
		default:
			if !expectLabel {
				break // an operator word: in, not, contains, starts, with, ends
			}
			rest := canon[i:]
			switch {
			case strings.HasPrefix(rest, "has("):
				end := strings.IndexByte(rest, ')')
				if end < 0 {
					b.WriteString(rest)
					return b.String()
				}
				b.WriteString("has(" + prefix + rest[4:end] + ")")
				i += end + 1
				expectLabel = false
				continue
			case strings.HasPrefix(rest, "all()"):
				if nsSemantics {
					b.WriteString("has(" + selector.NamespaceLabel + ")")
				} else {
					b.WriteString("all()")
				}
				i += len("all()")
				expectLabel = false
				continue
			case strings.HasPrefix(rest, "global()"):
				if nsSemantics {
					b.WriteString("!has(" + selector.NamespaceLabel + ")")
				} else {
					b.WriteString("global()")
				}
				i += len("global()")
				expectLabel = false
				continue
			}
			j := i
			for j < len(canon) && isLabelChar(canon[j]) {
				j++
			}
			if j == i {
				j = i + 1
			}
			b.WriteString(prefix + canon[i:j])
			i = j
			expectLabel = false
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func isLabelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

// hint is a condition every entity matching a selector must meet: having
// label key (with value, when hasValue). The graph indexes sets and
// endpoints by it so that an endpoint update evaluates only the selectors
// that could match it, and a new selector only the endpoints that could.
type hint struct {
	key, value string
	hasValue   bool
	ok         bool
}

// selectorHint finds the most selective hint in the top-level conjunction
// of a canonical selector, or none (for a disjunction, a negation, all()).
func selectorHint(canon string) hint {
	terms := []string{canon}
	if strings.HasPrefix(canon, "(") && matchingParen(canon, 0) == len(canon)-1 {
		parts := splitTopLevel(canon[1:len(canon)-1], " && ")
		if len(parts) < 2 {
			return hint{} // an || group
		}
		terms = parts
	}
	var best hint
	score := func(h hint) int {
		switch {
		case !h.ok:
			return 0
		case !h.hasValue:
			return 1
		case h.key == selector.NamespaceLabel || h.key == orchestratorLabel:
			return 2 // many endpoints share these
		default:
			return 3
		}
	}
	for _, t := range terms {
		if h := termHint(t); score(h) > score(best) {
			best = h
		}
	}
	return best
}

func termHint(t string) hint {
	if strings.HasPrefix(t, "has(") && strings.HasSuffix(t, ")") {
		return hint{key: t[4 : len(t)-1], ok: true}
	}
	if t == "" || !isLabelChar(t[0]) || strings.HasPrefix(t, "all()") || strings.HasPrefix(t, "global()") {
		return hint{}
	}
	sp := strings.IndexByte(t, ' ')
	if sp < 0 {
		return hint{}
	}
	key, rest := t[:sp], t[sp+1:]
	switch {
	case strings.HasPrefix(rest, "== "):
		v := rest[3:]
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			return hint{key: key, value: v[1 : len(v)-1], hasValue: true, ok: true}
		}
	case strings.HasPrefix(rest, "in {"), strings.HasPrefix(rest, "contains "),
		strings.HasPrefix(rest, "starts with "), strings.HasPrefix(rest, "ends with "):
		return hint{key: key, ok: true}
	}
	return hint{}
}

// matchingParen returns the index of the parenthesis closing the one at
// open, skipping quoted values; -1 if none.
func matchingParen(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return -1
			}
			i += j + 1
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitTopLevel splits s at sep where sep is outside parentheses, braces
// and quotes.
func splitTopLevel(s, sep string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return append(parts, s[start:])
			}
			i += j + 1
		case '(', '{':
			depth++
		case ')', '}':
			depth--
		default:
			if depth == 0 && strings.HasPrefix(s[i:], sep) {
				parts = append(parts, s[start:i])
				i += len(sep) - 1
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}
