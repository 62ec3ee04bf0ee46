package selector

import (
	"errors"
	"testing"
)

// fuzzLabels are label sets that the fuzzer's selectors are evaluated against
// to check that a selector and its canonical form select the same things.
// They use short keys and values because those are what mutation produces.
var fuzzLabels = []map[string]string{
	nil,
	{"a": "b"},
	{"a": "", "b": "a"},
	{"a": "a", "b": "b", "c": "ab"},
	{NamespaceLabel: "a", "a": "'"},
	{"b": `"`, "k8s-app": "x"},
}

func FuzzParse(f *testing.F) {
	for _, tc := range evalTests {
		f.Add(tc.sel)
	}
	for _, tc := range canonTests {
		f.Add(tc.in)
	}
	for _, tc := range errTests {
		f.Add(tc.sel)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if verr := Validate(s); (verr == nil) != (err == nil) {
			t.Fatalf("Parse(%q) error %v but Validate error %v", s, err, verr)
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T is not a *ParseError", s, err)
			}
			if pe.Pos < 0 || pe.Pos > len(s) || pe.Selector != s || pe.Msg == "" {
				t.Fatalf("Parse(%q) gave a malformed error %#v", s, pe)
			}
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) gave canonical form %q which does not parse: %v", s, canon, err)
		}
		if again.String() != canon {
			t.Fatalf("Parse(%q): canonical form %q reparses as %q", s, canon, again.String())
		}
		for _, l := range fuzzLabels {
			want := sel.Evaluate(l)
			if again.Evaluate(l) != want {
				t.Fatalf("Parse(%q) and its canonical form %q disagree on %v", s, canon, l)
			}
			if sel.EvaluateLabels(MapLabels(l)) != want {
				t.Fatalf("Parse(%q): Evaluate and EvaluateLabels disagree on %v", s, l)
			}
		}
	})
}
