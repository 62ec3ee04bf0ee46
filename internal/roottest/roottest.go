package roottest

import (
	"os"
	"os/exec"
	"testing"
)

// euid is the effective user ID; a variable so that the package's own
// test can play a user who is not root.
var euid = os.Geteuid

// NeedRoot fails t unless the process is root; why says what the test does
// that needs it.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if euid() != 0 {
		t.Fatalf("needs root (%s): run this test as root, as `make test` and CI do", why)
	}
}

// NeedProgram fails t unless name is on PATH; pkg is the Debian package
// that provides it. It returns the program's path.
func NeedProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("needs %s (Debian package %s; scripts/install-deps.sh installs it): %v", name, pkg, err)
	}
	return p
}

// NeedFile fails t unless path exists; what names it and pkg is the Debian
// package that provides it (the CNI reference plugins are not on PATH).
func NeedFile(t testing.TB, path, what, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("needs %s at %s (Debian package %s; scripts/install-deps.sh installs it): %v", what, path, pkg, err)
	}
}
