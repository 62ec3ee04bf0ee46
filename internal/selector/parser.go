package selector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The parser works directly on the input string instead of producing a token
// list first. Calico's tokenizer is context-sensitive anyway (a word after a
// label is an operator, elsewhere it is a label), and scanning in place gives
// every error an exact byte position for free.

type parser struct {
	src   string
	pos   int
	depth int
}

func parse(s string) (node, error) {
	p := &parser{src: s}
	p.skipSpace()
	if p.eof() {
		return allNode{}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		if p.src[p.pos] == ')' {
			return nil, p.errorf(p.pos, "unexpected ')' without a matching '('")
		}
		return nil, p.errorf(p.pos, "expected &&, || or end of selector, found %s", p.describe(p.pos))
	}
	return n, nil
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

// skipSpace skips blanks. Only space and tab count: Calico rejects newlines
// and other whitespace, and a selector that Calico would reject should not be
// accepted here either.
func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func (p *parser) errorf(pos int, format string, args ...any) *ParseError {
	return &ParseError{Selector: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// parseOr parses one or more &&-groups separated by ||.
func (p *parser) parseOr() (node, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	var operands []node
	for {
		p.skipSpace()
		if !strings.HasPrefix(p.src[p.pos:], "||") {
			break
		}
		p.pos += 2
		next, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		if operands == nil {
			operands = appendOr(nil, first)
		}
		operands = appendOr(operands, next)
	}
	if operands == nil {
		return first, nil
	}
	return &orNode{operands: operands}, nil
}

// parseAnd parses one or more unary expressions separated by &&.
func (p *parser) parseAnd() (node, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	var operands []node
	for {
		p.skipSpace()
		if !strings.HasPrefix(p.src[p.pos:], "&&") {
			break
		}
		p.pos += 2
		next, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if operands == nil {
			operands = appendAnd(nil, first)
		}
		operands = appendAnd(operands, next)
	}
	if operands == nil {
		return first, nil
	}
	return &andNode{operands: operands}, nil
}

// appendAnd and appendOr append n to operands, splicing in n's own operands
// when n is a group of the same kind: "(a && b) && c" and "a && (b && c)"
// mean "a && b && c", and must print the same.
func appendAnd(operands []node, n node) []node {
	if g, ok := n.(*andNode); ok {
		return append(operands, g.operands...)
	}
	return append(operands, n)
}

func appendOr(operands []node, n node) []node {
	if g, ok := n.(*orNode); ok {
		return append(operands, g.operands...)
	}
	return append(operands, n)
}

// parseUnary parses a primary expression preceded by any number of "!".
func (p *parser) parseUnary() (node, error) {
	negate := false
	for {
		p.skipSpace()
		// "!=" is never a negation; leave it for parsePrimary to reject
		// with a message about what it actually is.
		if p.eof() || p.src[p.pos] != '!' || strings.HasPrefix(p.src[p.pos:], "!=") {
			break
		}
		negate = !negate
		p.pos++
	}
	n, err := p.parsePrimary()
	if err != nil || !negate {
		return n, err
	}
	// Collapsing "!(!x)" to x keeps String idempotent: Calico collapses
	// "!!x" while parsing but prints "!(!x)" as "!!x", which then parses
	// to something that prints differently.
	if inner, ok := n.(*notNode); ok {
		return inner.operand, nil
	}
	return &notNode{operand: n}, nil
}

func (p *parser) parsePrimary() (node, error) {
	p.skipSpace()
	if p.eof() {
		return nil, p.errorf(p.pos, "expected expression, found end of selector")
	}
	rest := p.src[p.pos:]
	switch {
	case rest[0] == '(':
		return p.parseParens()
	// The function-like forms must be followed by "(" at once, as in
	// Calico; "has (a)" reads as a label called "has" and then fails.
	case strings.HasPrefix(rest, "has("):
		return p.parseHas()
	case strings.HasPrefix(rest, "all("):
		return p.parseNoArgs(len("all("), "all", allNode{})
	case strings.HasPrefix(rest, "global("):
		return p.parseNoArgs(len("global("), "global", globalNode{})
	case isLabelChar(rest[0]):
		return p.parseComparison()
	}
	return nil, p.errorf(p.pos, "expected expression, found %s", p.describe(p.pos))
}

func (p *parser) parseParens() (node, error) {
	open := p.pos
	if p.depth >= MaxNesting {
		return nil, p.errorf(open, "parentheses nested more than %d deep", MaxNesting)
	}
	p.depth++
	p.pos++
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.eof() || p.src[p.pos] != ')' {
		return nil, p.errorf(p.pos, "expected ')' to close '(' at position %d, found %s", open, p.describe(p.pos))
	}
	p.pos++
	p.depth--
	return n, nil
}

func (p *parser) parseHas() (node, error) {
	p.pos += len("has(")
	p.skipSpace()
	start := p.pos
	key := p.scanLabel()
	if key == "" {
		return nil, p.errorf(p.pos, "expected label name in has(), found %s", p.describe(p.pos))
	}
	if len(key) > MaxLabelLength {
		return nil, p.errorf(start, "label name is %d bytes long, more than the maximum of %d", len(key), MaxLabelLength)
	}
	p.skipSpace()
	if p.eof() || p.src[p.pos] != ')' {
		return nil, p.errorf(p.pos, "expected ')' after has(%s, found %s", key, p.describe(p.pos))
	}
	p.pos++
	return &hasNode{key: key}, nil
}

func (p *parser) parseNoArgs(prefixLen int, name string, n node) (node, error) {
	p.pos += prefixLen
	p.skipSpace()
	if p.eof() || p.src[p.pos] != ')' {
		return nil, p.errorf(p.pos, "expected ')' after %s(: %s() takes no arguments, found %s", name, name, p.describe(p.pos))
	}
	p.pos++
	return n, nil
}

// parseComparison parses "label op operand".
func (p *parser) parseComparison() (node, error) {
	start := p.pos
	key := p.scanLabel()
	if len(key) > MaxLabelLength {
		return nil, p.errorf(start, "label name is %d bytes long, more than the maximum of %d", len(key), MaxLabelLength)
	}
	p.skipSpace()
	opPos := p.pos
	rest := p.src[p.pos:]
	switch {
	case strings.HasPrefix(rest, "=="):
		p.pos += 2
		v, err := p.parseValue("==")
		if err != nil {
			return nil, err
		}
		return &eqNode{key: key, value: v}, nil
	case strings.HasPrefix(rest, "!="):
		p.pos += 2
		v, err := p.parseValue("!=")
		if err != nil {
			return nil, err
		}
		return &neNode{key: key, value: v}, nil
	}
	// Word operators. A label may itself be called "in" or "contains", which
	// is why these are only recognised here, after a label.
	if p.cutWords("contains") {
		v, err := p.parseValue("contains")
		if err != nil {
			return nil, err
		}
		return &containsNode{key: key, value: v}, nil
	}
	if p.cutWords("starts", "with") {
		v, err := p.parseValue("starts with")
		if err != nil {
			return nil, err
		}
		return &startsWithNode{key: key, value: v}, nil
	}
	if p.cutWords("ends", "with") {
		v, err := p.parseValue("ends with")
		if err != nil {
			return nil, err
		}
		return &endsWithNode{key: key, value: v}, nil
	}
	if p.cutWords("not", "in") {
		vs, err := p.parseSet("not in")
		if err != nil {
			return nil, err
		}
		return &notInNode{key: key, values: vs}, nil
	}
	if p.cutWords("in") {
		vs, err := p.parseSet("in")
		if err != nil {
			return nil, err
		}
		return &inNode{key: key, values: vs}, nil
	}
	hint := ""
	switch {
	case key == "not":
		hint = " (negation is written \"!\")"
	case (key == "has" || key == "all" || key == "global") && strings.HasPrefix(rest, "("):
		hint = fmt.Sprintf(" (write %s( with no blank before the parenthesis)", key)
	}
	return nil, p.errorf(opPos, "expected operator (==, !=, in, not in, contains, starts with, ends with) after label %q, found %s%s",
		key, p.describe(opPos), hint)
}

// cutWords consumes an operator made of the given words if it comes next.
// As in Calico, blanks between the words are optional ("startswith" and
// "notin" are accepted) but the last word must not run on into a label
// character, so "a inx" is not "a in x".
func (p *parser) cutWords(words ...string) bool {
	i := p.pos
	for n, w := range words {
		if n > 0 {
			for i < len(p.src) && isSpace(p.src[i]) {
				i++
			}
		}
		if !strings.HasPrefix(p.src[i:], w) {
			return false
		}
		i += len(w)
	}
	if i < len(p.src) && isLabelChar(p.src[i]) {
		return false
	}
	p.pos = i
	return true
}

// parseValue parses the quoted operand of a comparison operator.
func (p *parser) parseValue(op string) (string, error) {
	p.skipSpace()
	if p.eof() || !isQuote(p.src[p.pos]) {
		return "", p.errorf(p.pos, "expected quoted string after %s, found %s", op, p.describe(p.pos))
	}
	return p.scanString()
}

// parseSet parses "{ 'a', 'b' }". Like Calico it accepts an empty set and a
// trailing comma.
func (p *parser) parseSet(op string) (valueSet, error) {
	p.skipSpace()
	if p.eof() || p.src[p.pos] != '{' {
		return nil, p.errorf(p.pos, "expected '{' after %s, found %s", op, p.describe(p.pos))
	}
	p.pos++
	var values []string
	for {
		p.skipSpace()
		if p.eof() || !isQuote(p.src[p.pos]) {
			break
		}
		v, err := p.scanString()
		if err != nil {
			return nil, err
		}
		values = append(values, v)
		p.skipSpace()
		if p.eof() || p.src[p.pos] != ',' {
			if p.eof() || p.src[p.pos] != '}' {
				return nil, p.errorf(p.pos, "expected ',' or '}' in set, found %s", p.describe(p.pos))
			}
			break
		}
		p.pos++
	}
	if p.eof() || p.src[p.pos] != '}' {
		return nil, p.errorf(p.pos, "expected quoted string or '}' in set, found %s", p.describe(p.pos))
	}
	p.pos++
	return newValueSet(values), nil
}

// scanString reads a string literal at p.pos. There are no escapes: the
// literal ends at the next quote of the same kind, and a backslash is an
// ordinary character. That is Calico's rule; the other quote style is the
// way to put a quote in a value.
func (p *parser) scanString() (string, error) {
	start := p.pos
	q := p.src[start]
	end := strings.IndexByte(p.src[start+1:], q)
	if end < 0 {
		return "", p.errorf(start, "unterminated string: no closing %c", q)
	}
	p.pos = start + 1 + end + 1
	return p.src[start+1 : start+1+end], nil
}

func (p *parser) scanLabel() string {
	start := p.pos
	for p.pos < len(p.src) && isLabelChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func isQuote(c byte) bool { return c == '"' || c == '\'' }

// isLabelChar accepts Calico's label characters. They are looser than
// Kubernetes' rules (a label may start with "-" or hold several "/"), which
// is deliberate: every label Kubernetes allows is accepted, and so is
// everything Calico accepts.
func isLabelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

// describe names what is at pos, for "found ..." in error messages.
func (p *parser) describe(pos int) string {
	if pos >= len(p.src) {
		return "end of selector"
	}
	rest := p.src[pos:]
	c := rest[0]
	switch {
	case isQuote(c):
		return "quoted string"
	case isLabelChar(c):
		end := 0
		for end < len(rest) && isLabelChar(rest[end]) {
			end++
		}
		word := rest[:end]
		if len(word) > 32 {
			word = word[:32] + "..."
		}
		switch word {
		case "and", "AND":
			return fmt.Sprintf("%q (conjunction is written \"&&\")", word)
		case "or", "OR":
			return fmt.Sprintf("%q (disjunction is written \"||\")", word)
		}
		return fmt.Sprintf("%q", word)
	}
	for _, op := range []string{"&&", "||", "==", "!="} {
		if strings.HasPrefix(rest, op) {
			return fmt.Sprintf("%q", op)
		}
	}
	switch c {
	case '&':
		return `"&" (conjunction is written "&&")`
	case '|':
		return `"|" (disjunction is written "||")`
	case '=':
		return `"=" (equality is written "==")`
	case '\n', '\r', '\v', '\f':
		return fmt.Sprintf("%q (only spaces and tabs may separate tokens)", string(c))
	}
	r, size := utf8.DecodeRuneInString(rest)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", string(r))
}
