package containerdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/servalnet/serval/internal/testbin"
)

// ProbePackage is the test program every test image can run
// (testdata/probe: it prints its user, its arguments and what it sees at
// the paths among them).
const ProbePackage = "./internal/containerdtest/testdata/probe"

// StaticBinary builds the Go package pkg (a path relative to the
// repository root, such as "./cmd/serval-pause") into a temporary
// directory of t and returns the binary's path. It is static
// (CGO_ENABLED=0): an image has no C library to link against.
func StaticBinary(t testing.TB, pkg string) string {
	t.Helper()
	repo, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	return out
}
