package crd

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

var (
	jsonMarshaler   = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	textMarshaler   = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// walker builds schemas by reflection. inProgress guards against a type
// that contains itself, which a structural schema cannot express.
type walker struct {
	inProgress map[reflect.Type]bool
}

// field is one JSON field of a struct, after embedded structs are inlined.
type field struct {
	name      string
	typ       reflect.Type
	omitEmpty bool // omitempty or omitzero
	vtag      string
}

// fieldsOf lists the JSON fields of a struct as encoding/json sees them: an
// anonymous struct field without a name is inlined; "-" and unexported
// fields are left out.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, fieldsOf(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for _, o := range strings.Split(opts, ",") {
			if o == "omitempty" || o == "omitzero" {
				omit = true
			}
		}
		out = append(out, field{name: name, typ: f.Type, omitEmpty: omit, vtag: f.Tag.Get("v")})
	}
	return out
}

// object is the schema of a struct; path names it in errors.
func (w *walker) object(t reflect.Type, path string) (*Schema, error) {
	if w.inProgress[t] {
		return nil, fmt.Errorf("%s: type %s contains itself, which a structural schema cannot express", orTop(path), t)
	}
	w.inProgress[t] = true
	defer delete(w.inProgress, t)

	s := &Schema{Type: "object", Properties: map[string]*Schema{}}
	for _, f := range fieldsOf(t) {
		fp := path + "." + f.name
		if _, dup := s.Properties[f.name]; dup {
			return nil, fmt.Errorf("%s: two fields of %s are named %q in JSON", fp, t, f.name)
		}
		if path == "" && f.name == "metadata" {
			// The API server knows a resource's ObjectMeta; a schema may
			// only say it is an object.
			s.Properties[f.name] = &Schema{Type: "object"}
			continue
		}
		fs, err := w.fieldSchema(f, fp)
		if err != nil {
			return nil, err
		}
		if e, ok := fieldEnums[t][f.name]; ok {
			if fs.Type != "string" {
				return nil, fmt.Errorf("%s: an enum for a %s field", orTop(fp), fs.Type)
			}
			fs.Enum = append([]string(nil), e...)
		}
		s.Properties[f.name] = fs
		if !f.omitEmpty && requiredKind(f.typ) {
			s.Required = append(s.Required, f.name)
		}
	}
	sort.Strings(s.Required)
	s.XValidations = celRules[t]
	return s, nil
}

func orTop(path string) string {
	if path == "" {
		return "(top)"
	}
	return strings.TrimPrefix(path, ".")
}

// requiredKind reports whether a field of type t without omitempty is
// required: a string, or a value that encodes itself as a number or a
// string (a protocol, a port, a duration). Numbers and booleans are not:
// Serval, like Calico, takes a missing one as its zero value.
func requiredKind(t reflect.Type) bool {
	if _, special := selfMarshalled[t]; special {
		return true
	}
	return t.Kind() == reflect.String
}

// fieldSchema is the schema of one field: its type's, with what the field's
// tags add (nullability, enum, bounds).
func (w *walker) fieldSchema(f field, path string) (*Schema, error) {
	t := f.typ
	isPtr := t.Kind() == reflect.Pointer
	s, err := w.schema(t, path)
	if err != nil {
		return nil, err
	}
	// encoding/json writes a nil pointer, slice or map as null unless the
	// field is omitempty.
	if !f.omitEmpty && (isPtr || t.Kind() == reflect.Slice || t.Kind() == reflect.Map) {
		s.Nullable = true
	}
	if f.vtag != "" {
		if err := applyVTag(s, f, isPtr); err != nil {
			return nil, fmt.Errorf("%s: %w", orTop(path), err)
		}
	}
	// A non-pointer string left empty is "unset" to Serval's validation, so
	// an enum there must accept "".
	if !isPtr && f.omitEmpty && len(s.Enum) > 0 && s.Type == "string" {
		s.Enum = append([]string{""}, s.Enum...)
	}
	return s, nil
}

// schema is the schema of a type, through pointers.
func (w *walker) schema(t reflect.Type, path string) (*Schema, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if mk, ok := selfMarshalled[t]; ok {
		return mk(), nil
	}
	for _, i := range []reflect.Type{jsonMarshaler, jsonUnmarshaler, textMarshaler, textUnmarshaler} {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return nil, fmt.Errorf("%s: type %s encodes itself (it implements %s) and has no schema in internal/crd's selfMarshalled table; add one that accepts everything its UnmarshalJSON accepts", orTop(path), t, i)
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		return w.object(t, path)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: map key type %s is not a string", orTop(path), t.Key())
		}
		elem, err := w.schema(t.Elem(), path+"[*]")
		if err != nil {
			return nil, err
		}
		elem.Nullable = elem.Nullable || t.Elem().Kind() == reflect.Pointer
		return &Schema{Type: "object", AdditionalProperties: elem}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return &Schema{Type: "string", Format: "byte"}, nil
		}
		elem, err := w.schema(t.Elem(), path+"[*]")
		if err != nil {
			return nil, err
		}
		// A nil pointer in a list is written as null.
		elem.Nullable = elem.Nullable || t.Elem().Kind() == reflect.Pointer
		return &Schema{Type: "array", Items: elem}, nil
	case reflect.String:
		s := &Schema{Type: "string"}
		if e, ok := enums[t]; ok {
			s.Enum = append([]string(nil), e...)
		}
		return s, nil
	case reflect.Bool:
		return &Schema{Type: "boolean"}, nil
	case reflect.Float32, reflect.Float64:
		return &Schema{Type: "number"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return intSchema(t), nil
	}
	return nil, fmt.Errorf("%s: type %s (%s) has no JSON schema", orTop(path), t, t.Kind())
}

// intSchema bounds an integer by its Go type: encoding/json (and Serval's
// decoder) refuse a number the type cannot hold.
func intSchema(t reflect.Type) *Schema {
	s := &Schema{Type: "integer", Format: "int64"}
	if t.Bits() <= 32 {
		s.Format = "int32"
	}
	switch t.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32:
		lo, hi := int64(-1)<<(t.Bits()-1), int64(1)<<(t.Bits()-1)-1
		s.Minimum, s.Maximum = &lo, &hi
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		lo, hi := int64(0), int64(1)<<t.Bits()-1
		s.Minimum, s.Maximum = &lo, &hi
		if t.Bits() == 32 {
			s.Format = "int64" // 4294967295 does not fit an int32
		}
	case reflect.Uint, reflect.Uint64:
		lo := int64(0)
		s.Minimum = &lo
	}
	return s
}

// applyVTag turns FelixConfiguration's validation tags into schema: enum
// and loglevel into an enum, min and range into bounds. Serval checks a
// non-pointer field only when it is set (not zero), so a bound that would
// refuse zero is applied to pointers only. The other checks (regexp, host,
// cidrs, ...) stay Serval's.
func applyVTag(s *Schema, f field, isPtr bool) error {
	check, arg, _ := strings.Cut(f.vtag, "=")
	switch check {
	case "enum":
		if s.Type != "string" {
			return fmt.Errorf("enum tag on a %s field", s.Type)
		}
		s.Enum = strings.Split(arg, "|")
	case "loglevel":
		s.Enum = []string{"Trace", "Debug", "Info", "Warning", "Error", "Fatal"}
	case "min", "range":
		if s.Type != "integer" {
			return fmt.Errorf("%s tag on a %s field", check, s.Type)
		}
		loS, hiS, isRange := strings.Cut(arg, ":")
		lo, err := strconv.ParseInt(loS, 10, 64)
		if err != nil {
			return fmt.Errorf("bad %s tag %q: %w", check, f.vtag, err)
		}
		hi := int64(math.MaxInt64)
		if isRange {
			if hi, err = strconv.ParseInt(hiS, 10, 64); err != nil {
				return fmt.Errorf("bad %s tag %q: %w", check, f.vtag, err)
			}
		}
		if !isPtr && (lo > 0 || hi < 0) {
			return nil
		}
		tighten(s, lo, hi, isRange)
	}
	return nil
}

// tighten narrows the bounds the Go type gave to [lo, hi].
func tighten(s *Schema, lo, hi int64, hasHi bool) {
	if s.Minimum == nil || lo > *s.Minimum {
		s.Minimum = &lo
	}
	if hasHi && (s.Maximum == nil || hi < *s.Maximum) {
		s.Maximum = &hi
	}
}
