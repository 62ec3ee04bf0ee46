package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// deb is the package under test, built once by TestMain.
var deb string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "serval-package-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "package test:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The package as `make package` builds it, but uncompressed: xz takes
	// a minute and is dpkg-deb's business, not the package's.
	script, err := filepath.Abs("../../scripts/package.sh")
	if err != nil {
		fmt.Fprintln(os.Stderr, "package test:", err)
		return 1
	}
	cmd := exec.Command("bash", script, dir)
	cmd.Env = append(os.Environ(), "DEB_COMPRESSION=none")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "package test: building the package with %s: %v\n", script, err)
		return 1
	}
	deb = strings.TrimSpace(string(out))
	if _, err := os.Stat(deb); err != nil {
		fmt.Fprintf(os.Stderr, "package test: %s printed %q, not a package: %v\n", script, out, err)
		return 1
	}
	return m.Run()
}
