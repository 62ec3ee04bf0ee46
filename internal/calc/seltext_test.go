package calc

import (
	"testing"

	"github.com/servalnet/serval/internal/selector"
)

func TestPrefixLabels(t *testing.T) {
	cases := []struct {
		in, want string
		ns       bool
	}{
		{in: "env == 'prod'", want: `pcns.env == "prod"`, ns: true},
		{in: "has(env) && !has(x)", want: `(has(pcns.env) && !has(pcns.x))`, ns: true},
		{in: "a in {'x', 'y'} || b not in {'z'}", want: `(pcns.a in {"x", "y"} || pcns.b not in {"z"})`, ns: true},
		{in: "a contains 'in' && b starts with 'has(' && c ends with ')'", want: `(pcns.a contains "in" && pcns.b starts with "has(" && pcns.c ends with ")")`, ns: true},
		{in: "a != 'b'", want: `pcns.a != "b"`, ns: true},
		{in: "all()", want: `has(projectcalico.org/namespace)`, ns: true},
		{in: "global()", want: `!has(projectcalico.org/namespace)`, ns: true},
		{in: "all()", want: `all()`, ns: false},
		{in: "!(a == 'x' || has(in))", want: `!(pcns.a == "x" || has(pcns.in))`, ns: true},
		{in: `in == "not in"`, want: `pcns.in == "not in"`, ns: true},
	}
	for _, tc := range cases {
		sel, err := selector.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got := prefixLabels(sel.String(), namespaceLabelPrefix, tc.ns)
		if got != tc.want {
			t.Errorf("prefixLabels(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if _, err := selector.Parse(got); err != nil {
			t.Errorf("prefixLabels(%q) = %q does not parse: %v", tc.in, got, err)
		}
	}
}

// A rewritten selector must evaluate on prefixed labels exactly as the
// original does on plain ones.
func TestPrefixLabelsEquivalent(t *testing.T) {
	sels := []string{
		"a == 'x'", "a != 'x'", "has(a)", "!has(b)", "a in {'x','y'}", "a not in {'x'}",
		"a contains 'x' && b starts with 'y'", "b ends with 'z' || !(a == 'x' && has(b))",
	}
	labelSets := []map[string]string{nil, {"a": "x"}, {"a": "xy", "b": "yz"}, {"b": "y"}, {"a": "q", "b": "z"}}
	for _, s := range sels {
		orig, _ := selector.Parse(s)
		re, err := selector.Parse(prefixLabels(orig.String(), "p.", false))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		for _, l := range labelSets {
			pl := map[string]string{}
			for k, v := range l {
				pl["p."+k] = v
			}
			pl["a"] = "unprefixed-noise"
			if orig.Evaluate(l) != re.Evaluate(pl) {
				t.Errorf("%q on %v: original %v, rewritten %q %v", s, l, orig.Evaluate(l), re.String(), re.Evaluate(pl))
			}
		}
	}
}

func TestSelectorHint(t *testing.T) {
	cases := []struct {
		in   string
		want hint
	}{
		{"role == 'db'", hint{key: "role", value: "db", hasValue: true, ok: true}},
		{"has(role)", hint{key: "role", ok: true}},
		{"role in {'a','b'}", hint{key: "role", ok: true}},
		{"role != 'db'", hint{}},
		{"!has(role)", hint{}},
		{"all()", hint{}},
		{"a == 'x' || b == 'y'", hint{}},
		{"projectcalico.org/namespace == 'prod' && has(x) && role == 'db'", hint{key: "role", value: "db", hasValue: true, ok: true}},
		{"projectcalico.org/namespace == 'prod' && (a == 'x' || b == 'y')", hint{key: "projectcalico.org/namespace", value: "prod", hasValue: true, ok: true}},
		{"a == 'x && y == \"z\"' && has(b)", hint{key: "a", value: `x && y == "z"`, hasValue: true, ok: true}},
	}
	for _, tc := range cases {
		sel, err := selector.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := selectorHint(sel.String()); got != tc.want {
			t.Errorf("selectorHint(%q) = %+v, want %+v", sel.String(), got, tc.want)
		}
	}
}
