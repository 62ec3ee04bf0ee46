package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Document is one resource read from a file, with where it came from so
// that every later message can point back at it.
type Document struct {
	Source   string // file name, or "-" for standard input
	Index    int    // 1-based position of the document in the source
	Line     int    // line of the source where the document starts
	Resource Resource
}

// Where names the document for messages: `policy.yaml: document 2 (line 14)`.
func (d Document) Where() string { return where(d.Source, d.Index, d.Line) }

func where(source string, index, line int) string {
	return fmt.Sprintf("%s: document %d (line %d)", source, index, line)
}

// DocumentError is a problem with one document of a source.
type DocumentError struct {
	Source string
	Index  int
	Line   int
	Err    error
}

// Error prefixes every line of the underlying error with the document's
// location, so that a multi-problem validation error stays readable.
func (e *DocumentError) Error() string {
	prefix := where(e.Source, e.Index, e.Line) + ": "
	lines := strings.Split(e.Err.Error(), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

func (e *DocumentError) Unwrap() error { return e.Err }

// Decode reads every YAML or JSON document in data (multi-document YAML,
// a single JSON object, or a List kind with items) into resources. Decoding
// is strict: an unknown field, a duplicate key or a value of the wrong type
// is an error naming the field. It returns every document it could decode
// and an error joining every problem found (nil when there were none).
// Defaults are not applied and specs are not validated here; Load does both.
func Decode(source string, data []byte) ([]Document, error) {
	return decode(source, data, false, nil)
}

// Load is Decode followed, for each resource, by prepare (which may be nil;
// callers use it to fill in what the file may leave out, such as the
// namespace), SetDefaults and Validate. Every problem of a document is
// reported at once — unknown fields and invalid values together — and only
// documents without any problem are returned.
func Load(source string, data []byte, prepare func(Resource) error) ([]Document, error) {
	return decode(source, data, true, prepare)
}

func decode(source string, data []byte, validate bool, prepare func(Resource) error) ([]Document, error) {
	var docs []Document
	var errs []error
	for i, chunk := range splitDocuments(data) {
		index := i + 1
		fail := func(err error) {
			errs = append(errs, &DocumentError{Source: source, Index: index, Line: chunk.line, Err: err})
		}
		js, err := yaml.YAMLToJSONStrict(chunk.text)
		if err != nil {
			fail(fmt.Errorf("not valid YAML or JSON: %s", shiftYAMLLine(err.Error(), chunk.line)))
			continue
		}
		var raw any
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			fail(fmt.Errorf("not valid YAML or JSON: %w", err))
			continue
		}
		if raw == nil {
			continue // an empty document, e.g. only comments
		}
		obj, ok := raw.(map[string]any)
		if !ok {
			fail(fmt.Errorf("expected a resource (an object with apiVersion, kind, metadata and spec), got %s", jsonKind(raw)))
			continue
		}
		items, err := listItems(obj)
		if err != nil {
			fail(err)
			continue
		}
		for _, item := range items {
			r, shapeErrs, err := decodeObject(item)
			if err != nil {
				fail(err)
				continue
			}
			if validate {
				if err := check(r, shapeErrs, prepare); err != nil {
					fail(err)
					continue
				}
			} else if len(shapeErrs) > 0 {
				fail(&ValidationError{Key: KeyOf(r), Errors: shapeErrs})
				continue
			}
			docs = append(docs, Document{Source: source, Index: index, Line: chunk.line, Resource: r})
		}
	}
	return docs, errors.Join(errs...)
}

// check prepares, defaults and validates r, adding the problems decoding
// found. A field that could not be decoded is left zero, so validation
// problems at or below it would only repeat the decoding problem; they are
// dropped.
func check(r Resource, shapeErrs ErrorList, prepare func(Resource) error) error {
	if prepare != nil {
		if err := prepare(r); err != nil {
			return err
		}
	}
	r.SetDefaults()
	all := append(ErrorList{}, shapeErrs...)
	var ve *ValidationError
	if err := Validate(r); errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			if !coveredBy(fe.Path, shapeErrs) {
				all = append(all, fe)
			}
		}
	} else if err != nil {
		return err
	}
	if len(all) == 0 {
		return nil
	}
	return &ValidationError{Key: KeyOf(r), Errors: all}
}

func coveredBy(p Path, errs ErrorList) bool {
	for _, e := range errs {
		if p == e.Path || strings.HasPrefix(string(p), string(e.Path)+".") || strings.HasPrefix(string(p), string(e.Path)+"[") {
			return true
		}
	}
	return false
}

// listItems returns the resources in obj: obj itself, or the items of a
// List ("kind: List" or "kind: IPPoolList"), as `get -o yaml` prints them.
func listItems(obj map[string]any) ([]map[string]any, error) {
	kind, _ := obj["kind"].(string)
	if !strings.HasSuffix(kind, "List") {
		return []map[string]any{obj}, nil
	}
	for k := range obj {
		if k != "kind" && k != "apiVersion" && k != "items" && k != "metadata" {
			return nil, fmt.Errorf("%s: unknown field %q in a list", k, k)
		}
	}
	rawItems, ok := obj["items"].([]any)
	if !ok && obj["items"] != nil {
		return nil, fmt.Errorf("items: expected a list, got %s", jsonKind(obj["items"]))
	}
	items := make([]map[string]any, 0, len(rawItems))
	for i, it := range rawItems {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("items[%d]: expected a resource, got %s", i, jsonKind(it))
		}
		if _, set := m["kind"]; !set && kind != "List" {
			m["kind"] = strings.TrimSuffix(kind, "List")
		}
		if _, set := m["apiVersion"]; !set {
			m["apiVersion"] = obj["apiVersion"]
		}
		items = append(items, m)
	}
	return items, nil
}

// decodeObject turns one object into a resource. Unknown fields and values
// of the wrong type come back as shapeErrs beside a resource decoded as far
// as possible, so that the caller can report them together with validation
// problems; err is for a document that is not a resource at all.
func decodeObject(obj map[string]any) (r Resource, shapeErrs ErrorList, err error) {
	kind, _ := obj["kind"].(string)
	if kind == "" {
		return nil, nil, errors.New("kind: is required")
	}
	info, ok := kinds[kind]
	if !ok || info.Internal {
		hint := ""
		if info, ok := LookupKind(kind); ok && !info.Internal {
			hint = fmt.Sprintf(" (did you mean %q?)", info.Kind)
		}
		return nil, nil, fmt.Errorf("kind: %q is not a known kind%s; known kinds: %s", kind, hint, KindNames())
	}
	r, _ = New(kind)
	if av, _ := obj["apiVersion"].(string); av != APIVersion {
		shapeErrs.Invalid("apiVersion", obj["apiVersion"], "is not supported (use "+APIVersion+")")
	}
	checkShape(&shapeErrs, "", obj, reflect.TypeOf(r).Elem())
	js, _ := json.Marshal(obj)
	// encoding/json skips a field of the wrong type and goes on, so r holds
	// every field that could be decoded; checkShape has already named the
	// ones that could not, with better paths than json's error has.
	if err := json.Unmarshal(js, r); err != nil && len(shapeErrs) == 0 {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			shapeErrs.Add(Path(te.Field), "expected %s, got %s", te.Type, te.Value)
		} else {
			shapeErrs.Add("", "%v", err)
		}
	}
	// The type meta is the registry's, whatever the document said, so that
	// a bad apiVersion is reported once, by the check above.
	*r.GetTypeMeta() = TypeMeta{Kind: info.Kind, APIVersion: APIVersion}
	return r, shapeErrs, nil
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// checkShape walks a decoded JSON value beside the Go type it will be
// decoded into and reports unknown fields and values of the wrong type,
// with the full path of each, all at once. encoding/json would stop at the
// first problem and name neither list indices nor the field's position.
func checkShape(errs *ErrorList, p Path, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // null leaves the field unset, as encoding/json does
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // the type decodes itself (ports, protocols, times, ...)
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			errs.Add(p, "expected an object, got %s", jsonKind(v))
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				errs.Add(p.Child(k), "unknown field %q%s", k, suggest(k, fields))
				continue
			}
			checkShape(errs, p.Child(k), m[k], ft)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			errs.Add(p, "expected an object, got %s", jsonKind(v))
			return
		}
		for k, e := range m {
			checkShape(errs, p.Key(k), e, t.Elem())
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			errs.Add(p, "expected a list, got %s", jsonKind(v))
			return
		}
		for i, e := range l {
			checkShape(errs, p.Index(i), e, t.Elem())
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			errs.Add(p, "expected a string, got %s", jsonKind(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			errs.Add(p, "expected true or false, got %s", jsonKind(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		checkInt(errs, p, v, t, true)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		checkInt(errs, p, v, t, false)
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			errs.Add(p, "expected a number, got %s", jsonKind(v))
		}
	}
}

func checkInt(errs *ErrorList, p Path, v any, t reflect.Type, signed bool) {
	n, ok := v.(json.Number)
	if !ok {
		errs.Add(p, "expected an integer, got %s", jsonKind(v))
		return
	}
	bits := t.Bits()
	var err error
	if signed {
		_, err = strconv.ParseInt(n.String(), 10, bits)
	} else {
		_, err = strconv.ParseUint(n.String(), 10, bits)
	}
	if err != nil {
		errs.Add(p, "%q is not a valid %s", n.String(), t.Kind())
	}
}

// jsonFields maps the JSON names of a struct's fields to their types,
// following encoding/json's rules for embedded structs.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// suggest names a known field close to an unknown one, for typos such as
// "blocksize" or "ingres".
func suggest(k string, fields map[string]reflect.Type) string {
	best, bestDist := "", 3
	for name := range fields {
		d := editDistance(strings.ToLower(k), strings.ToLower(name))
		if d < bestDist || (d == bestDist && best != "" && name < best) {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(x)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + x.String()
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

type chunk struct {
	text []byte
	line int
}

// splitDocuments splits multi-document YAML on "---" lines, remembering the
// line each document starts on. A JSON file is one document.
func splitDocuments(data []byte) []chunk {
	var out []chunk
	lines := bytes.SplitAfter(data, []byte("\n"))
	start, startLine := 0, 1
	offset := 0
	for i, l := range lines {
		trimmed := bytes.TrimRight(l, " \t\r\n")
		if bytes.Equal(trimmed, []byte("---")) || bytes.HasPrefix(trimmed, []byte("--- ")) {
			out = append(out, chunk{text: data[start:offset], line: startLine})
			start, startLine = offset+len(l), i+2
		}
		offset += len(l)
	}
	out = append(out, chunk{text: data[start:], line: startLine})
	// Drop documents that hold nothing but whitespace and comments, so that
	// a leading "---" does not count as a document.
	kept := out[:0]
	for _, c := range out {
		if !blank(c.text) {
			kept = append(kept, c)
		}
	}
	return kept
}

func blank(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// shiftYAMLLine rewrites "yaml: line N: ..." so that N counts from the
// start of the file rather than the start of the document.
func shiftYAMLLine(msg string, docLine int) string {
	const marker = "line "
	i := strings.Index(msg, marker)
	if i < 0 {
		return msg
	}
	j := i + len(marker)
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, err := strconv.Atoi(msg[j:k])
	if err != nil {
		return msg
	}
	return msg[:j] + strconv.Itoa(n+docLine-1) + msg[k:]
}
