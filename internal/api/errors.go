package api

import (
	"fmt"
	"strconv"
	"strings"
)

// Path is a field path as users write it: spec.ingress[0].destination.ports[1].
// The zero value is the root.
type Path string

// Child returns the path of a named field below p.
func (p Path) Child(name string) Path {
	if p == "" {
		return Path(name)
	}
	return p + "." + Path(name)
}

// Index returns the path of element i of the list at p.
func (p Path) Index(i int) Path { return p + "[" + Path(strconv.Itoa(i)) + "]" }

// Key returns the path of the map entry k at p.
func (p Path) Key(k string) Path { return p + "[" + Path(strconv.Quote(k)) + "]" }

// FieldError is one problem with one field.
type FieldError struct {
	Path   Path
	Detail string // a complete phrase, value included: `"70000" is not a valid port (1-65535)`
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Detail
	}
	return string(e.Path) + ": " + e.Detail
}

// ErrorList collects every problem found in one resource; validation never
// stops at the first.
type ErrorList []FieldError

// Add appends a problem at path, formatting the detail like fmt.Sprintf.
func (l *ErrorList) Add(p Path, format string, args ...any) {
	*l = append(*l, FieldError{Path: p, Detail: fmt.Sprintf(format, args...)})
}

// Invalid records that value is not acceptable at p, and why.
func (l *ErrorList) Invalid(p Path, value any, why string) {
	l.Add(p, "%s %s", quoteValue(value), why)
}

// Required records that a field that must be set is missing.
func (l *ErrorList) Required(p Path) { l.Add(p, "is required") }

// Forbidden records that a field must not be set (in this context).
func (l *ErrorList) Forbidden(p Path, why string) { l.Add(p, "must not be set: %s", why) }

func quoteValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case fmt.Stringer:
		return strconv.Quote(x.String())
	default:
		return fmt.Sprintf("%q", fmt.Sprint(x))
	}
}

// ValidationError reports every problem with one resource, one per line:
//
//	GlobalNetworkPolicy "allow-db": spec.ingress[0].destination.ports[1]: "70000" is not a valid port (1-65535)
type ValidationError struct {
	Key    Key
	Errors ErrorList
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Key.String())
		b.WriteString(": ")
		b.WriteString(fe.Error())
	}
	return b.String()
}
