package api

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The compatibility document: one table per kind, one row per field.
const compatDoc = "../../docs/COMPATIBILITY.md"

var dumpFields = flag.Bool("dump-fields", false, "print every kind's field paths (to start a COMPATIBILITY.md row)")

// commonSection is the heading of the fields every kind has (kind,
// apiVersion, metadata.*), listed once.
const commonSection = "Every kind"

var unmarshalerT = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// fieldPaths lists every field path of t as users write it, recursively:
// "spec.ingress", "spec.ingress[].action". A type that decodes itself
// (a duration, a port, a protocol) or a map is one field; its parts are not
// fields of their own.
func fieldPaths(t reflect.Type, prefix string, out map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		if name == "" && f.Anonymous {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			fieldPaths(ft, prefix, out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out[p] = f.Name
		list := false
		for {
			switch ft.Kind() {
			case reflect.Pointer:
				ft = ft.Elem()
				continue
			case reflect.Slice, reflect.Array:
				ft, list = ft.Elem(), true
				continue
			}
			break
		}
		if ft.Kind() != reflect.Struct || reflect.PointerTo(ft).Implements(unmarshalerT) || ft.Implements(unmarshalerT) {
			continue
		}
		if list {
			p += "[]"
		}
		fieldPaths(ft, p, out)
	}
}

// kindFields returns, for each registered kind, its field paths; the
// fields every kind shares are under commonSection.
func kindFields() map[string]map[string]bool {
	out := map[string]map[string]bool{commonSection: {}}
	for _, k := range Kinds() {
		paths := map[string]string{}
		fieldPaths(reflect.TypeOf(k.New()).Elem(), "", paths)
		out[k.Kind] = map[string]bool{}
		for p := range paths {
			if p == "kind" || p == "apiVersion" || p == "metadata" || strings.HasPrefix(p, "metadata.") {
				out[commonSection][p] = true
			} else {
				out[k.Kind][p] = true
			}
		}
	}
	return out
}

var (
	compatHeadingRE = regexp.MustCompile(`^## (.+?)\s*$`)
	compatRowRE     = regexp.MustCompile("^\\| `([^`]+)` \\| (enforced|refused|not applicable) \\|(.*)\\|\\s*$")
)

// readCompat parses the document: section → field → status and why.
func readCompat(t *testing.T) map[string]map[string][2]string {
	data, err := os.ReadFile(compatDoc)
	if err != nil {
		t.Fatalf("reading %s: %v", compatDoc, err)
	}
	out := map[string]map[string][2]string{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		if m := compatHeadingRE.FindStringSubmatch(line); m != nil {
			section = m[1]
			if out[section] == nil {
				out[section] = map[string][2]string{}
			}
			continue
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := compatRowRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: a field row must read | `path` | enforced, refused or not applicable | why |: %s", compatDoc, i+1, line)
			continue
		}
		if section == "" {
			t.Errorf("%s:%d: a field row before any '## Kind' heading", compatDoc, i+1)
			continue
		}
		why := strings.TrimSpace(m[3])
		if m[2] != "enforced" && why == "" {
			t.Errorf("%s:%d: %s %s: a %s field needs a why", compatDoc, i+1, section, m[1], m[2])
		}
		if _, dup := out[section][m[1]]; dup {
			t.Errorf("%s:%d: %s %s listed twice", compatDoc, i+1, section, m[1])
		}
		out[section][m[1]] = [2]string{m[2], why}
	}
	return out
}

// TestCompatibilityDocument fails when a field of the API has no row in
// docs/COMPATIBILITY.md, when the document lists a field or kind that does
// not exist, and when a field refused by support.go is not marked refused.
func TestCompatibilityDocument(t *testing.T) {
	fields := kindFields()
	if *dumpFields {
		var kinds []string
		for k := range fields {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			var ps []string
			for p := range fields[k] {
				ps = append(ps, p)
			}
			sort.Strings(ps)
			for _, p := range ps {
				fmt.Printf("%s\t%s\n", k, p)
			}
		}
	}
	doc := readCompat(t)
	for kind, ps := range fields {
		if doc[kind] == nil {
			t.Errorf("%s: no '## %s' section in %s", kind, kind, compatDoc)
			continue
		}
		for p := range ps {
			if _, ok := doc[kind][p]; !ok {
				t.Errorf("%s %s: no row in %s (enforced, refused (why) or not applicable (why))", kind, p, compatDoc)
			}
		}
	}
	for kind, rows := range doc {
		if fields[kind] == nil {
			t.Errorf("%s lists %q, which is not a kind", compatDoc, kind)
			continue
		}
		for p := range rows {
			if !fields[kind][p] {
				t.Errorf("%s lists %s %s, which is not a field", compatDoc, kind, p)
			}
		}
	}
	for _, r := range Refusals() {
		if row := doc[r.Kind][r.Field]; row[0] != "refused" {
			t.Errorf("%s %s is refused (support.go) but %s says %q", r.Kind, r.Field, compatDoc, row[0])
		}
	}
}
