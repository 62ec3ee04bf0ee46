package datastore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/servalnet/serval/internal/api"
)

// FieldSelector is a parsed ListOptions.FieldSelector: every requirement
// must hold.
type FieldSelector []FieldRequirement

// FieldRequirement is one term: the value at Path equals (or, with
// Negate, differs from) Value.
type FieldRequirement struct {
	Path   string // "spec.node", "metadata.namespace"
	Value  string
	Negate bool
}

// String renders the requirement as it is written.
func (r FieldRequirement) String() string {
	op := "="
	if r.Negate {
		op = "!="
	}
	return r.Path + op + r.Value
}

// ParseFieldSelector parses "path=value,path!=value" ("==" also works).
// Paths are the resource's JSON field names joined by dots; a missing
// field has the value "", so "spec.node=" selects resources without one.
func ParseFieldSelector(s string) (FieldSelector, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out FieldSelector
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			return nil, fmt.Errorf("field selector %q: empty term", s)
		}
		var req FieldRequirement
		switch {
		case strings.Contains(term, "!="):
			req.Path, req.Value, _ = strings.Cut(term, "!=")
			req.Negate = true
		case strings.Contains(term, "=="):
			req.Path, req.Value, _ = strings.Cut(term, "==")
		case strings.Contains(term, "="):
			req.Path, req.Value, _ = strings.Cut(term, "=")
		default:
			return nil, fmt.Errorf("field selector %q: term %q has no operator (use path=value or path!=value)", s, term)
		}
		req.Path, req.Value = strings.TrimSpace(req.Path), strings.TrimSpace(req.Value)
		if req.Path == "" {
			return nil, fmt.Errorf("field selector %q: term %q has no field path", s, term)
		}
		for _, seg := range strings.Split(req.Path, ".") {
			if seg == "" {
				return nil, fmt.Errorf("field selector %q: field path %q has an empty part", s, req.Path)
			}
		}
		out = append(out, req)
	}
	return out, nil
}

// Matches reports whether r satisfies every requirement, evaluated on r's
// JSON form (so field names are those users write in manifests).
func (fs FieldSelector) Matches(r api.Resource) (bool, error) {
	if len(fs) == 0 {
		return true, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("encoding %s for its field selector: %w", api.KeyOf(r), err)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return false, fmt.Errorf("decoding %s for its field selector: %w", api.KeyOf(r), err)
	}
	for _, req := range fs {
		got := scalarString(lookupPath(doc, strings.Split(req.Path, ".")))
		if (got == req.Value) == req.Negate {
			return false, nil
		}
	}
	return true, nil
}

// lookupPath walks a decoded JSON document. Map keys may themselves hold
// dots (label keys such as "projectcalico.org/name"), so at each level the
// longest run of segments that names a key wins.
func lookupPath(v any, segs []string) any {
	if len(segs) == 0 {
		return v
	}
	m, ok := v.(map[string]any)
	if !ok {
		if l, ok := v.([]any); ok {
			if i, err := strconv.Atoi(segs[0]); err == nil && i >= 0 && i < len(l) {
				return lookupPath(l[i], segs[1:])
			}
		}
		return nil
	}
	for n := len(segs); n >= 1; n-- {
		if child, ok := m[strings.Join(segs[:n], ".")]; ok {
			return lookupPath(child, segs[n:])
		}
	}
	return nil
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
