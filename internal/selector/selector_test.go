package selector

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

type L = map[string]string

// evalTests check what a selector matches. Every selector here must parse.
var evalTests = []struct {
	sel    string
	labels L
	want   bool
}{
	// ==
	{`a == 'b'`, L{"a": "b"}, true},
	{`a == 'b'`, L{"a": "c"}, false},
	{`a == 'b'`, L{}, false},
	{`a == 'b'`, L{"b": "b"}, false},
	{`a == "b"`, L{"a": "b", "c": "d"}, true},
	{`a == ''`, L{"a": ""}, true},
	{`a == ''`, L{}, false},

	// != (a missing label satisfies it)
	{`a != 'b'`, L{"a": "c"}, true},
	{`a != 'b'`, L{"a": "b"}, false},
	{`a != 'b'`, L{}, true},
	{`a != 'b'`, nil, true},
	{`a != ''`, L{"a": ""}, false},
	{`a != ''`, L{"a": "x"}, true},

	// in
	{`a in {'x', 'y'}`, L{"a": "x"}, true},
	{`a in {'x', 'y'}`, L{"a": "y"}, true},
	{`a in {'x', 'y'}`, L{"a": "z"}, false},
	{`a in {'x', 'y'}`, L{}, false},
	{`a in {}`, L{"a": ""}, false},
	{`a in {''}`, L{"a": ""}, true},
	{`a in {'b', 'a', 'b'}`, L{"a": "b"}, true},
	{`a in {'a','b','c','d','e','f','g','h','i','j'}`, L{"a": "j"}, true},
	{`a in {'a','b','c','d','e','f','g','h','i','j'}`, L{"a": "a"}, true},
	{`a in {'a','b','c','d','e','f','g','h','i','j'}`, L{"a": "k"}, false},
	{`a in {'a','b','c','d','e','f','g','h','i','j'}`, L{"a": ""}, false},

	// not in (a missing label satisfies it)
	{`a not in {'x', 'y'}`, L{"a": "x"}, false},
	{`a not in {'x', 'y'}`, L{"a": "z"}, true},
	{`a not in {'x', 'y'}`, L{}, true},
	{`a not in {'x', 'y'}`, nil, true},
	{`a not in {}`, L{"a": "x"}, true},
	{`a notin {'x'}`, L{"a": "x"}, false},
	{`a not in {'a','b','c','d','e','f','g','h','i','j'}`, L{"a": "k"}, true},
	{`a not in {'a','b','c','d','e','f','g','h','i','j'}`, L{"a": "e"}, false},

	// has
	{`has(a)`, L{"a": ""}, true},
	{`has(a)`, L{"a": "x"}, true},
	{`has(a)`, L{"b": "x"}, false},
	{`!has(a)`, L{}, true},
	{`!has(a)`, L{"a": "x"}, false},

	// contains, starts with, ends with
	{`a contains 'ell'`, L{"a": "hello"}, true},
	{`a contains 'ell'`, L{"a": "help"}, false},
	{`a contains 'ell'`, L{"b": "hello"}, false},
	{`a contains ''`, L{"a": ""}, true},
	{`a contains ''`, L{}, false},
	{`a starts with 'he'`, L{"a": "hello"}, true},
	{`a starts with 'he'`, L{"a": "the"}, false},
	{`a starts with 'he'`, L{}, false},
	{`a startswith 'he'`, L{"a": "he"}, true},
	{`a ends with 'lo'`, L{"a": "hello"}, true},
	{`a ends with 'lo'`, L{"a": "lol"}, false},
	{`a ends with 'lo'`, L{}, false},
	{`a endswith 'lo'`, L{"a": "lo"}, true},

	// all() and global()
	{`all()`, L{}, true},
	{`all()`, L{"a": "b"}, true},
	{``, L{}, true},
	{`   `, L{"a": "b"}, true},
	{"\t", nil, true},
	{`global()`, L{}, true},
	{`global()`, L{"a": "b"}, true},
	{`global()`, L{NamespaceLabel: "default"}, false},
	{`global()`, L{NamespaceLabel: ""}, false},
	{`!global()`, L{NamespaceLabel: "default"}, true},
	{`!global()`, L{}, false},
	{`global() && role == 'gw'`, L{"role": "gw"}, true},
	{`global() && role == 'gw'`, L{"role": "gw", NamespaceLabel: "ns"}, false},
	{`global() || projectcalico.org/namespace == 'dev'`, L{NamespaceLabel: "dev"}, true},
	{`global() || projectcalico.org/namespace == 'dev'`, L{NamespaceLabel: "prod"}, false},

	// negation
	{`!a == 'b'`, L{"a": "b"}, false},
	{`!a == 'b'`, L{}, true},
	{`!a in {'b'}`, L{"a": "c"}, true},
	{`!(a == 'b')`, L{"a": "c"}, true},
	{`!!has(a)`, L{"a": "x"}, true},
	{`!!!has(a)`, L{"a": "x"}, false},
	{`! ! has(a)`, L{}, false},
	{`!(!has(a))`, L{"a": "x"}, true},
	{`!a != 'b'`, L{}, false},
	{`!a not in {'b'}`, L{"a": "b"}, true},

	// precedence: && binds tighter than ||
	{`a == '1' || b == '1' && c == '1'`, L{"a": "1"}, true},
	{`a == '1' || b == '1' && c == '1'`, L{"b": "1"}, false},
	{`a == '1' || b == '1' && c == '1'`, L{"b": "1", "c": "1"}, true},
	{`a == '1' && b == '1' || c == '1'`, L{"c": "1"}, true},
	{`a == '1' && b == '1' || c == '1'`, L{"a": "1"}, false},
	{`(a == '1' || b == '1') && c == '1'`, L{"a": "1"}, false},
	{`(a == '1' || b == '1') && c == '1'`, L{"a": "1", "c": "1"}, true},
	{`!has(a) || has(b)`, L{"a": "x"}, false},
	{`!has(a) || has(b)`, L{"a": "x", "b": "y"}, true},
	{`!(has(a) || has(b))`, L{"b": "x"}, false},
	{`!(has(a) || has(b))`, L{}, true},
	{`!(has(a) && has(b))`, L{"a": "x"}, true},

	// nested parentheses
	{`((((has(a)))))`, L{"a": "x"}, true},
	{`(has(a) && (has(b) && (has(c) || has(d))))`, L{"a": "", "b": "", "d": ""}, true},
	{`(has(a) && (has(b) && (has(c) || has(d))))`, L{"a": "", "b": ""}, false},
	{`((has(a) || has(b)) && (has(c) || has(d)))`, L{"b": "", "c": ""}, true},
	{`((has(a) || has(b)) && (has(c) || has(d)))`, L{"a": "", "b": ""}, false},
	{strings.Repeat("(", MaxNesting) + "has(a)" + strings.Repeat(")", MaxNesting), L{"a": ""}, true},

	// whitespace variants
	{`a=='b'`, L{"a": "b"}, true},
	{"\ta\t==\t'b'\t", L{"a": "b"}, true},
	{`a in{'x'}`, L{"a": "x"}, true},
	{`a in {  'x'  ,  'y'  }`, L{"a": "y"}, true},
	{`a in {'x',}`, L{"a": "x"}, true},
	{`has( a )`, L{"a": "x"}, true},
	{`all( )`, nil, true},
	{`a  starts   with  'x'`, L{"a": "xy"}, true},
	{"a starts\twith 'x'", L{"a": "xy"}, true},
	{`a not   in {'x'}`, L{"a": "y"}, true},
	{`a!='b'&&c=='d'`, L{"c": "d"}, true},
	{`has(a)||has(b)`, L{"b": "1"}, true},
	{`a contains'x'`, L{"a": "axa"}, true},

	// quoting: both styles, no escapes
	{`a == "it's"`, L{"a": "it's"}, true},
	{`a == '"quoted"'`, L{"a": `"quoted"`}, true},
	{`a == 'back\slash'`, L{"a": `back\slash`}, true},
	{`a == 'x\'`, L{"a": `x\`}, true},
	{`a == "x\"`, L{"a": `x\`}, true},
	{`a in {"'", '"'}`, L{"a": `"`}, true},
	{`a in {"'", '"'}`, L{"a": `'`}, true},
	{`a == 'héllo wörld'`, L{"a": "héllo wörld"}, true},
	{`a == 'x && y || (z)'`, L{"a": "x && y || (z)"}, true},
	{`a == 'line\nbreak'`, L{"a": `line\nbreak`}, true},
	{"a == 'tab\there'", L{"a": "tab\there"}, true},

	// label names
	{`projectcalico.org/namespace == 'default'`, L{NamespaceLabel: "default"}, true},
	{`k8s-app == 'kube-dns'`, L{"k8s-app": "kube-dns"}, true},
	{`a.b/c_d == 'x'`, L{"a.b/c_d": "x"}, true},
	{`has(projectcalico.org/name)`, L{"projectcalico.org/name": "x"}, true},
	{`-a == 'x'`, L{"-a": "x"}, true},
	{`in == 'x'`, L{"in": "x"}, true},
	{`has == 'x'`, L{"has": "x"}, true},
	{`all == 'x'`, L{"all": "x"}, true},
	{`global != 'x'`, L{}, true},
	{`contains contains 'x'`, L{"contains": "axb"}, true},
	{`not in {'x'}`, L{"not": "x"}, true},
	{`A == 'B'`, L{"a": "B"}, false},
	{strings.Repeat("k", MaxLabelLength) + ` == 'v'`, L{strings.Repeat("k", MaxLabelLength): "v"}, true},

	// a realistic policy selector
	{`role == 'db' && env in {'prod', 'staging'} && !has(deprecated)`, L{"role": "db", "env": "prod"}, true},
	{`role == 'db' && env in {'prod', 'staging'} && !has(deprecated)`, L{"role": "db", "env": "dev"}, false},
	{`role == 'db' && env in {'prod', 'staging'} && !has(deprecated)`, L{"role": "db", "env": "prod", "deprecated": ""}, false},
}

func TestEvaluate(t *testing.T) {
	for _, tc := range evalTests {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.sel, err)
			continue
		}
		if got := sel.Evaluate(tc.labels); got != tc.want {
			t.Errorf("Parse(%q).Evaluate(%v) = %v, want %v", tc.sel, tc.labels, got, tc.want)
		}
		if got := sel.EvaluateLabels(MapLabels(tc.labels)); got != tc.want {
			t.Errorf("Parse(%q).EvaluateLabels(%v) = %v, want %v", tc.sel, tc.labels, got, tc.want)
		}
		// The canonical form must select exactly what the original does.
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q) (canonical form of %q): %v", sel.String(), tc.sel, err)
			continue
		}
		if got := again.Evaluate(tc.labels); got != tc.want {
			t.Errorf("canonical %q of %q: Evaluate(%v) = %v, want %v", sel.String(), tc.sel, tc.labels, got, tc.want)
		}
	}
}

// layered is what profile inheritance looks like: an endpoint's own labels
// hide the same labels inherited from its profiles.
type layered struct{ own, inherited map[string]string }

func (l layered) Get(key string) (string, bool) {
	if v, ok := l.own[key]; ok {
		return v, true
	}
	v, ok := l.inherited[key]
	return v, ok
}

func TestEvaluateLabelsInherited(t *testing.T) {
	labels := layered{
		own:       L{"role": "db"},
		inherited: L{"role": "web", "env": "prod", NamespaceLabel: "shop"},
	}
	tests := []struct {
		sel  string
		want bool
	}{
		{`role == 'db'`, true},
		{`role == 'web'`, false},
		{`env == 'prod' && role == 'db'`, true},
		{`has(env)`, true},
		{`global()`, false},
		{`env not in {'prod'}`, false},
		{`missing != 'x'`, true},
	}
	for _, tc := range tests {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.sel, err)
		}
		if got := sel.EvaluateLabels(labels); got != tc.want {
			t.Errorf("Parse(%q).EvaluateLabels(layered) = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

func TestEvaluateNil(t *testing.T) {
	for _, s := range []string{`all()`, `a != 'b'`, `has(a)`, `global()`, `a not in {'x'}`} {
		sel, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		want := s != `has(a)`
		if got := sel.Evaluate(nil); got != want {
			t.Errorf("Parse(%q).Evaluate(nil) = %v, want %v", s, got, want)
		}
		if got := sel.EvaluateLabels(nil); got != want {
			t.Errorf("Parse(%q).EvaluateLabels(nil) = %v, want %v", s, got, want)
		}
	}
}

// canonTests give the canonical form of a selector. Where the expected form
// is Calico's own (taken from its test suite), the comment says so.
var canonTests = []struct {
	in, want string
}{
	{``, `all()`},
	{`   `, `all()`},
	{` all() `, `all()`},   // Calico
	{` (all() )`, `all()`}, // Calico
	{`global( )`, `global()`},
	{`a=='b'`, `a == "b"`},
	{`a == "b"`, `a == "b"`},
	{`a != 'b'`, `a != "b"`},
	{`a!='"'`, `a != '"'`},   // Calico
	{`a == "'"`, `a == "'"`}, // Calico
	{`a == '"'`, `a == '"'`}, // Calico
	{`a == 'x\'`, `a == "x\"`},
	{`a contains 'x'`, `a contains "x"`},
	{`a contains '"'`, `a contains '"'`},      // Calico
	{`a startswith '"'`, `a starts with '"'`}, // Calico
	{`a endswith "'"`, `a ends with "'"`},     // Calico
	{`a ends   with 'x'`, `a ends with "x"`},
	{`a notin {'x'}`, `a not in {"x"}`},
	{`a in {"d", "a", "b"}`, `a in {"a", "b", "d"}`}, // Calico
	{`a in {"z", "z", "x", "y", "x", "a"}`, `a in {"a", "x", "y", "z"}`}, // Calico
	{`a in {}`, `a in {}`},
	{`a in {'x',}`, `a in {"x"}`},
	{`a not in {"'", '"'}`, `a not in {'"', "'"}`},
	{`has( a )`, `has(a)`},
	{`!has(a)`, `!has(a)`},
	{`!!has(a)`, `has(a)`},
	{`!(!has(a))`, `has(a)`},
	{`!(!(!has(a)))`, `!has(a)`},
	{`!(a == 'b')`, `!a == "b"`},
	{`a == 'b' && c == 'd'`, `(a == "b" && c == "d")`},
	{`(a == 'b') && (c == 'd')`, `(a == "b" && c == "d")`},
	{`(a == 'b' && c == 'd') && e == 'f'`, `(a == "b" && c == "d" && e == "f")`},
	{`a == 'b' && (c == 'd' && e == 'f')`, `(a == "b" && c == "d" && e == "f")`},
	{`has(a) || has(b) && has(c)`, `(has(a) || (has(b) && has(c)))`},
	{`(has(a) || has(b)) && has(c)`, `((has(a) || has(b)) && has(c))`},
	{`(has(a) || (has(b) || has(c)))`, `(has(a) || has(b) || has(c))`},
	{`has(a) || (has(b) || has(c)) || has(d)`, `(has(a) || has(b) || has(c) || has(d))`},
	{`!(has(a) && has(b))`, `!(has(a) && has(b))`},
	{`((has(a)))`, `has(a)`},
	{`all() && global()`, `(all() && global())`},
	{`! (has( b)||! has(a ))`, `!(has(b) || !has(a))`},       // Calico
	{`! (a == "b"&&! c != "d")`, `!(a == "b" && !c != "d")`}, // Calico
	{`!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`,
		`!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})`}, // Calico
}

func TestString(t *testing.T) {
	for _, tc := range canonTests {
		sel, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := sel.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("Parse(%q) (canonical form of %q): %v", sel.String(), tc.in, err)
			continue
		}
		if again.String() != sel.String() {
			t.Errorf("canonical form of %q is not stable: %q, then %q", tc.in, sel.String(), again.String())
		}
		if again.UniqueID() != sel.UniqueID() {
			t.Errorf("UniqueID of %q changed after a round trip", tc.in)
		}
	}
}

// sameTests are spellings of one selector that must print (and hash) the same.
var sameTests = [][]string{
	{`role == 'db'`, `role=="db"`, `(role == 'db')`, "\trole  ==  'db' ", `!!role == 'db'`},
	{`has(a) && has(b) && has(c)`, `(has(a) && has(b)) && has(c)`, `has(a) && (has(b) && (has(c)))`, `((has(a)&&has(b))&&has(c))`},
	{`a in {'x', 'y'}`, `a in {"y","x"}`, `a in {'x', 'y', 'x',}`, `(a in{'y', "x"})`},
	{`a not in {'x'}`, `a notin {"x"}`, `a not	in {'x'}`},
	{``, `all()`, ` ( all( ) ) `},
	{`!(has(a) || has(b))`, `!(has(a) || (has(b)))`, `!!!(has(a)||has(b))`},
}

func TestSameCanonicalForm(t *testing.T) {
	for _, group := range sameTests {
		first, err := Parse(group[0])
		if err != nil {
			t.Fatalf("Parse(%q): %v", group[0], err)
		}
		for _, s := range group[1:] {
			sel, err := Parse(s)
			if err != nil {
				t.Errorf("Parse(%q): %v", s, err)
				continue
			}
			if sel.String() != first.String() || sel.UniqueID() != first.UniqueID() {
				t.Errorf("Parse(%q) = %q (%s), want %q (%s) as for %q",
					s, sel.String(), sel.UniqueID(), first.String(), first.UniqueID(), group[0])
			}
		}
	}
}

func TestUniqueID(t *testing.T) {
	// These IDs are Calico's, from its own tests: matching them shows that
	// the canonical form and the hash are computed the same way.
	tests := []struct{ sel, want string }{
		{``, "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
		{` all() `, "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"},
		{`! (has( b)||! has(a ))`, "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"},
		{`! (a == "b"&&! c != "d")`, "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"},
	}
	for _, tc := range tests {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.sel, err)
		}
		if got := sel.UniqueID(); got != tc.want {
			t.Errorf("Parse(%q).UniqueID() = %q, want %q", tc.sel, got, tc.want)
		}
	}

	// Concurrent first calls must agree (and not race: run with -race).
	sel, err := Parse(`a == 'b'`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = sel.UniqueID()
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !strings.HasPrefix(id, "s:") || len(id) != 2+38 {
			t.Fatalf("UniqueID from concurrent calls: %q", ids)
		}
	}
}

// errTests are selectors that must not parse, with the byte position the
// error must point at and a fragment of the message.
var errTests = []struct {
	sel string
	pos int
	msg string
}{
	// missing operands and expressions
	{`a == 'b' &&`, 11, "expected expression, found end of selector"},
	{`a == 'b' ||`, 11, "expected expression, found end of selector"},
	{`!`, 1, "expected expression, found end of selector"},
	{`(`, 1, "expected expression, found end of selector"},
	{`()`, 1, `expected expression, found ")"`},
	{`)`, 0, `expected expression, found ")"`},
	{`|| a == 'b'`, 0, `expected expression, found "||"`},
	{`&& has(a)`, 0, `expected expression, found "&&"`},
	{`has(a) && && has(b)`, 10, `found "&&"`},
	{`a == 'b' &&& c == 'd'`, 11, `found "&"`},
	{`a == 'b' ||| c == 'd'`, 11, `found "|"`},
	{`!= 'a'`, 0, `expected expression, found "!="`},
	{`a == 'b' && (c == 'd' || )`, 25, `expected expression, found ")"`},
	{`'b' == a`, 0, "expected expression, found quoted string"},
	{`"b"`, 0, "expected expression, found quoted string"},

	// labels without an operator, or with a bad one
	{`a`, 1, `expected operator (==, !=, in, not in, contains, starts with, ends with) after label "a", found end of selector`},
	{`a `, 2, "found end of selector"},
	{`a b`, 2, `found "b"`},
	{`a = 'b'`, 2, `found "=" (equality is written "==")`},
	{`a IN {'b'}`, 2, `found "IN"`},
	{`a inx {'b'}`, 2, `found "inx"`},
	{`a containsx 'b'`, 2, `found "containsx"`},
	{`a starts 'b'`, 2, `found "starts"`},
	{`a starts withx 'b'`, 2, `found "starts"`},
	{`a ends wit 'b'`, 2, `found "ends"`},
	{`a not`, 2, `found "not"`},
	{`a not {'x'}`, 2, `found "not"`},
	{`a not inx {'b'}`, 2, `found "not"`},
	{`a% == 'b'`, 1, `found "%"`},
	{`a:b == 'c'`, 1, `found ":"`},
	{`all`, 3, `after label "all", found end of selector`},
	{`has`, 3, `after label "has"`},
	{`global`, 6, `after label "global"`},
	{`has (a)`, 4, `after label "has", found "(" (write has( with no blank before the parenthesis)`},
	{`all ()`, 4, `(write all( with no blank`},
	{`not has(a)`, 4, `after label "not", found "has" (negation is written "!")`},
	{`a ! = 'b'`, 2, `found "!"`},

	// operands of comparisons
	{`a ==`, 4, "expected quoted string after ==, found end of selector"},
	{`a == b`, 5, `expected quoted string after ==, found "b"`},
	{`a === 'b'`, 4, `after ==, found "="`},
	{`a != `, 5, "expected quoted string after !="},
	{`a contains b`, 11, `expected quoted string after contains, found "b"`},
	{`a starts with`, 13, "expected quoted string after starts with, found end of selector"},
	{`a ends with (b)`, 12, `after ends with, found "("`},
	{`a == has(b)`, 5, `found "has"`},

	// unterminated strings
	{`a == 'b`, 5, "unterminated string: no closing '"},
	{`a == "b`, 5, `unterminated string: no closing "`},
	{`a == "b'`, 5, "unterminated string"},
	{`a == 'b" && c == 'd'`, 18, `expected &&, || or end of selector, found "d"`},
	{`a in {"x", 'y}`, 11, "unterminated string"},
	{`a == 'b' && c == "`, 17, "unterminated string"},

	// sets
	{`a in 'x'`, 5, "expected '{' after in, found quoted string"},
	{`a in ('x')`, 5, `expected '{' after in, found "("`},
	{`a in`, 4, "expected '{' after in, found end of selector"},
	{`a not in 'x'`, 9, "expected '{' after not in"},
	{`a in {'x'`, 9, "expected ',' or '}' in set, found end of selector"},
	{`a in {'x' 'y'}`, 10, "expected ',' or '}' in set, found quoted string"},
	{`a in {,}`, 6, `expected quoted string or '}' in set, found ","`},
	{`a in {'x',,}`, 10, `expected quoted string or '}' in set, found ","`},
	{`a in {x}`, 6, `found "x"`},
	{`a in {'x',`, 10, "expected quoted string or '}' in set, found end of selector"},
	{`a in {'x'] `, 9, `expected ',' or '}' in set, found "]"`},
	{`a in {'x'} && b in`, 18, "expected '{' after in"},
	{`a in {'x'} {'y'}`, 11, `expected &&, || or end of selector, found "{"`},

	// has(), all(), global()
	{`has()`, 4, `expected label name in has(), found ")"`},
	{`has( )`, 5, "expected label name in has()"},
	{`has(`, 4, "expected label name in has(), found end of selector"},
	{`has('a')`, 4, "expected label name in has(), found quoted string"},
	{`has(a`, 5, "expected ')' after has(a, found end of selector"},
	{`has(a b)`, 6, `expected ')' after has(a, found "b"`},
	{`has(a == 'b')`, 6, `found "=="`},
	{`has(a, b)`, 5, `found ","`},
	{`all(a)`, 4, `all() takes no arguments, found "a"`},
	{`all(`, 4, "found end of selector"},
	{`global(x)`, 7, `global() takes no arguments, found "x"`},
	{`global(`, 7, "found end of selector"},

	// unbalanced parentheses and trailing garbage
	{`(has(a)`, 7, "expected ')' to close '(' at position 0, found end of selector"},
	{`((has(a))`, 9, "expected ')' to close '(' at position 0"},
	{`!(a == 'b'`, 10, "expected ')' to close '(' at position 1"},
	{`(a == 'b' && (c == 'd')`, 23, "expected ')' to close '(' at position 0"},
	{`has(a))`, 6, "unexpected ')' without a matching '('"},
	{`a == 'b')`, 8, "unexpected ')'"},
	{`(a == 'b'))`, 10, "unexpected ')'"},
	{`has(a) has(b)`, 7, `expected &&, || or end of selector, found "has"`},
	{`a == 'b' c == 'd'`, 9, `found "c"`},
	{`all() ()`, 6, `found "("`},
	{`a == 'b' and c == 'd'`, 9, `found "and" (conjunction is written "&&")`},
	{`a == 'b' or c == 'd'`, 9, `found "or" (disjunction is written "||")`},
	{`a == 'b' & c == 'd'`, 9, `found "&" (conjunction is written "&&")`},
	{`a == 'b' | c == 'd'`, 9, `found "|" (disjunction is written "||")`},

	// characters outside the language
	{`%`, 0, `expected expression, found "%"`},
	{`a == 'b' && %`, 12, `found "%"`},
	{"a == 'b'\n", 8, `found "\n" (only spaces and tabs may separate tokens)`},
	{"\n", 0, `found "\n"`},
	{"a\n== 'b'", 1, `found "\n"`},
	{"a ==\r\n'b'", 4, `found "\r"`},
	{`é == 'x'`, 0, `found "é"`},
	{"a\xff == 'b'", 1, "found byte 0xff"},
	{`{'a'}`, 0, `found "{"`},

	// limits
	{strings.Repeat("a", MaxLabelLength+1) + ` == 'x'`, 0, "label name is 513 bytes long, more than the maximum of 512"},
	{`has( ` + strings.Repeat("a", MaxLabelLength+1) + `)`, 5, "label name is 513 bytes long"},
	{strings.Repeat("(", MaxNesting+1) + "all()" + strings.Repeat(")", MaxNesting+1), MaxNesting, "parentheses nested more than 100 deep"},
	{`a == 'b' && ` + strings.Repeat("(", 200), 12 + MaxNesting, "nested more than"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errTests {
		_, err := Parse(tc.sel)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error at %d", tc.sel, tc.pos)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error %T is not a *ParseError", tc.sel, err)
			continue
		}
		if pe.Selector != tc.sel {
			t.Errorf("Parse(%q) error names selector %q", tc.sel, pe.Selector)
		}
		if pe.Pos != tc.pos {
			t.Errorf("Parse(%q) error at position %d, want %d: %v", tc.sel, pe.Pos, tc.pos, err)
		}
		if !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("Parse(%q) error message %q does not contain %q", tc.sel, pe.Msg, tc.msg)
		}
		if verr := Validate(tc.sel); verr == nil || verr.Error() != err.Error() {
			t.Errorf("Validate(%q) = %v, want %v", tc.sel, verr, err)
		}
	}
}

func TestParseErrorFormat(t *testing.T) {
	_, err := Parse(`a == 'b' &&`)
	want := `invalid selector "a == 'b' &&": at position 11: expected expression, found end of selector`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range evalTests {
		if err := Validate(tc.sel); err != nil {
			t.Errorf("Validate(%q) = %v", tc.sel, err)
		}
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	sel, err := Parse(`role == 'db' && env in {'prod', 'staging'} && !has(deprecated) || a contains 'x' || global()`)
	if err != nil {
		t.Fatal(err)
	}
	labels := L{"role": "db", "env": "prod", "a": "b"}
	if n := testing.AllocsPerRun(100, func() { sel.Evaluate(labels) }); n != 0 {
		t.Errorf("Evaluate allocates %v times", n)
	}
	ml := MapLabels(labels)
	if n := testing.AllocsPerRun(100, func() { sel.EvaluateLabels(ml) }); n != 0 {
		t.Errorf("EvaluateLabels allocates %v times", n)
	}
}

// TestCaseCount keeps the promise made in the package's review: at least 150
// table cases in all.
func TestCaseCount(t *testing.T) {
	n := len(evalTests) + len(canonTests) + len(errTests)
	for _, g := range sameTests {
		n += len(g) - 1
	}
	if n < 150 {
		t.Errorf("only %d table cases", n)
	}
	t.Logf("%d table cases: %d eval, %d canonical, %d equivalent spellings, %d errors",
		n, len(evalTests), len(canonTests), n-len(evalTests)-len(canonTests)-len(errTests), len(errTests))
}

func TestUsesGlobal(t *testing.T) {
	for s, want := range map[string]bool{
		"global()":                           true,
		"!global()":                          true,
		"a == 'x' || (b == 'y' && global())": true,
		"a == 'global()'":                    false,
		"all()":                              false,
		"":                                   false,
	} {
		sel, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got := UsesGlobal(sel); got != want {
			t.Errorf("UsesGlobal(%q) = %v, want %v", s, got, want)
		}
	}
}
