package api

import (
	"regexp"
	"testing"
)

// TestLazyRegexpsCompile compiles every expression of the package, which
// init no longer does, so that a malformed one fails here rather than in
// the middle of a validation.
func TestLazyRegexpsCompile(t *testing.T) {
	if len(lazyRegexps) < 16 {
		t.Fatalf("only %d lazy expressions registered, want every one of the package's (16)", len(lazyRegexps))
	}
	for _, l := range lazyRegexps {
		if _, err := regexp.Compile(l.expr); err != nil {
			t.Errorf("%q: %v", l.expr, err)
		}
	}
}
