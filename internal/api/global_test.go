package api

import "testing"

func TestCheckNoGlobal(t *testing.T) {
	cases := []struct {
		sel  string
		errs int
	}{
		{"role == 'db'", 0},
		{"a == 'global()'", 0}, // a quoted value is not the global() function
		{"global()", 1},
		{"has(x) && !global()", 1},
		{"role ==", 0}, // syntax errors are reported by the selector check, not here
	}
	for _, c := range cases {
		var errs ErrorList
		checkNoGlobal(&errs, "spec.selector", c.sel)
		if len(errs) != c.errs {
			t.Errorf("checkNoGlobal(%q) = %v, want %d errors", c.sel, errs, c.errs)
		}
	}
}
