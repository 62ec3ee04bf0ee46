// Package testbin runs real processes for tests: it builds Serval's
// commands for the tests that run the real binaries (the lab-based
// packages under test/), and starts the test binary again as worker
// processes (Worker) for tests that need several at once, so that each
// package does not carry its own copy of either.
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
	if err := GoBuild(repo, dir+"/", cmds...); err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return repo, dir, nil
}

// GoBuild runs go build -o out pkgs... in the repository root repo: out is
// a directory when it ends in "/", else the one binary's file name.
func GoBuild(repo, out string, pkgs ...string) error {
	build := exec.Command("go", append([]string{"build", "-o", out}, pkgs...)...)
	build.Dir = repo
	if msg, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", strings.Join(pkgs, " "), err, msg)
	}
	return nil
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
