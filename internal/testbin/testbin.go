// Package testbin builds Serval's commands for tests that run the real
// binaries (the lab-based packages under test/), so that each of them does
// not carry its own copy of the build step.
//
// Use, from a TestMain:
//
//	repo, dir, err := testbin.Build("serval-e2e", "./cmd/servalctl", "./cmd/serval-node")
//	if err != nil { fmt.Fprintln(os.Stderr, err); return 1 }
//	defer os.RemoveAll(dir)
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles cmds (package paths relative to the repository root, such
// as "./cmd/servalctl") into a new temporary directory named after prefix.
// It returns the repository root and that directory; the caller removes it.
func Build(prefix string, cmds ...string) (repo, dir string, err error) {
	if repo, err = Root(); err != nil {
		return "", "", err
	}
	if dir, err = os.MkdirTemp("", prefix+"-bin-"); err != nil {
		return "", "", err
	}
	build := exec.Command("go", append([]string{"build", "-o", dir + "/"}, cmds...)...)
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("building %s: %w\n%s", strings.Join(cmds, " "), err, out)
	}
	return repo, dir, nil
}

// Root is the repository root: the nearest directory above the working
// directory that holds go.mod.
func Root() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory")
		}
		d = parent
	}
}
