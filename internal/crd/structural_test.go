package crd

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// This file is a small validator of JSON values against the schemas this
// package makes, as the API server applies them: types (with
// x-kubernetes-int-or-string and nullable), required properties, enums,
// integer bounds, and unknown fields, which the API server would prune (or
// refuse, with kubectl's strict field validation). CEL rules are not
// evaluated here; the kube-apiserver test checks them.

// structuralProblems checks that a schema is structural as the API server
// requires: every node has a type (or is int-or-string), objects have
// properties or additionalProperties but not both, arrays have items, and
// metadata is nothing but `type: object` at the top.
func structuralProblems(s *Schema, path string, top bool) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s", orTop(path), fmt.Sprintf(format, args...)))
	}
	switch {
	case s.XIntOrString:
		if s.Type != "" {
			bad("int-or-string with type %q", s.Type)
		}
	case s.Type == "":
		bad("no type")
	}
	if s.Properties != nil && s.AdditionalProperties != nil {
		bad("both properties and additionalProperties")
	}
	if (s.Properties != nil || s.AdditionalProperties != nil) && s.Type != "object" {
		bad("properties on a %s", s.Type)
	}
	if s.Type == "array" && s.Items == nil {
		bad("array without items")
	}
	if s.Items != nil && s.Type != "array" {
		bad("items on a %s", s.Type)
	}
	for _, r := range s.Required {
		if s.Properties[r] == nil {
			bad("required %q is not a property", r)
		}
	}
	keys := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := s.Properties[k]
		if top && k == "metadata" {
			if p.Type != "object" || p.Properties != nil || p.AdditionalProperties != nil {
				bad("metadata must be just `type: object`")
			}
			continue
		}
		out = append(out, structuralProblems(p, path+"."+k, false)...)
	}
	if s.Items != nil {
		out = append(out, structuralProblems(s.Items, path+"[*]", false)...)
	}
	if s.AdditionalProperties != nil {
		out = append(out, structuralProblems(s.AdditionalProperties, path+"[*]", false)...)
	}
	return out
}

// validateValue checks a JSON-decoded value (decoded with UseNumber)
// against a schema and returns every problem, each with its path.
func validateValue(v any, s *Schema, path string) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s", orTop(path), fmt.Sprintf(format, args...)))
	}
	if v == nil {
		if !s.Nullable {
			bad("null is not allowed")
		}
		return out
	}
	if s.XIntOrString {
		switch x := v.(type) {
		case string:
		case json.Number:
			if _, err := x.Int64(); err != nil {
				bad("%s is not an integer or a string", x)
			}
		default:
			bad("expected an integer or a string, got %T", v)
		}
		return out
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("expected an object, got %T", v)
			return out
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				bad("required field %q is missing", r)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch {
			case s.AdditionalProperties != nil:
				out = append(out, validateValue(m[k], s.AdditionalProperties, path+"."+k)...)
			case s.Properties[k] != nil:
				out = append(out, validateValue(m[k], s.Properties[k], path+"."+k)...)
			case s.Properties == nil && path == ".metadata":
				// metadata is the API server's.
			default:
				bad("unknown field %q (it would be pruned)", k)
			}
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			bad("expected an array, got %T", v)
			return out
		}
		for i, e := range l {
			out = append(out, validateValue(e, s.Items, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("expected a string, got %T %v", v, v)
			return out
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			bad("%q is not one of %s", str, strings.Join(s.Enum, ", "))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("expected a boolean, got %T %v", v, v)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			bad("expected a number, got %T %v", v, v)
		}
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			bad("expected an integer, got %T %v", v, v)
			return out
		}
		i, err := n.Int64()
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) {
				bad("%s is not an integer", n)
				return out
			}
			i = int64(f)
		}
		if s.Minimum != nil && i < *s.Minimum {
			bad("%d is less than the minimum %d", i, *s.Minimum)
		}
		if s.Maximum != nil && i > *s.Maximum {
			bad("%d is more than the maximum %d", i, *s.Maximum)
		}
	default:
		bad("schema has unknown type %q", s.Type)
	}
	return out
}
