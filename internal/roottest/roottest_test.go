package roottest

import (
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records a Fatal instead of ending the
// test, so that the helpers' failures can be checked.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = format
}
func (r *recorder) Skipf(string, ...any) { panic("roottest must never skip") }
func (r *recorder) Skip(...any)          { panic("roottest must never skip") }

// TestMissingFails: a missing root, program or file fails the test (and
// never skips it); what is there passes.
func TestMissingFails(t *testing.T) {
	defer func(f func() int) { euid = f }(euid)
	missing := filepath.Join(t.TempDir(), "nothing")
	tests := []struct {
		name string
		uid  int
		call func(tb testing.TB)
		fail bool
		want string
	}{
		{"not root", 1000, func(tb testing.TB) { NeedRoot(tb, "netns") }, true, "needs root"},
		{"root", 0, func(tb testing.TB) { NeedRoot(tb, "netns") }, false, ""},
		{"no program", 0, func(tb testing.TB) { NeedProgram(tb, "serval-no-such-program", "nothing") }, true, "Debian package"},
		{"program", 0, func(tb testing.TB) { NeedProgram(tb, "sh", "dash") }, false, ""},
		{"no file", 0, func(tb testing.TB) { NeedFile(tb, missing, "the bridge plugin", "containernetworking-plugins") }, true, "needs %s at %s"},
		{"file", 0, func(tb testing.TB) { NeedFile(tb, t.TempDir(), "a directory", "none") }, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			euid = func() int { return tt.uid }
			r := &recorder{TB: t}
			tt.call(r)
			if r.failed != tt.fail || !strings.Contains(r.msg, tt.want) {
				t.Errorf("failed = %v (%q), want %v (%q)", r.failed, r.msg, tt.fail, tt.want)
			}
		})
	}
}
