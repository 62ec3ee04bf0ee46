package api

import (
	"regexp"
	"sync"
)

// lazyRegexp is a regular expression compiled on first use. Compiling the
// package's twenty expressions at init took ~0.7 ms of every process that
// imports api, most of them short-lived (a CNI plugin starts per command
// and uses two or three); a malformed expression still panics, only on
// first use rather than at start (TestLazyRegexpsCompile compiles them
// all).
type lazyRegexp struct {
	expr string
	re   func() *regexp.Regexp
}

// lazyRegexps are all of the package's, for the test.
var lazyRegexps []*lazyRegexp

func newLazyRegexp(expr string) *lazyRegexp {
	l := &lazyRegexp{expr: expr, re: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
	lazyRegexps = append(lazyRegexps, l)
	return l
}

// MatchString is regexp.Regexp's.
func (l *lazyRegexp) MatchString(s string) bool { return l.re().MatchString(s) }

// FindStringSubmatch is regexp.Regexp's.
func (l *lazyRegexp) FindStringSubmatch(s string) []string { return l.re().FindStringSubmatch(s) }
