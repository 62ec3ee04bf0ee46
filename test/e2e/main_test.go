// Package e2e runs end-to-end tests on serval-lab: real namespaces, the
// real binaries (built once by TestMain into a temporary directory), the
// real kernel. They need root and skip without it; the parts that need
// serval-node skip, saying so, until cmd/serval-node exists.
package e2e

import (
	"context"
	"fmt"
	"github.com/servalnet/serval/internal/testbin"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

var (
	binDir string // the built binaries
	// fakeBinDir has the same binaries, with test/e2e/fakeagent as serval-node.
	fakeBinDir string
	repo       string // repository root
	buildOK    bool
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips
	}
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-lab", "./cmd/serval-node"}
	start := time.Now()
	var dir string
	var err error
	if repo, dir, err = testbin.Build("serval-e2e", cmds...); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", strings.Join(cmds, " "), time.Since(start).Round(100*time.Millisecond))
	// A second directory where serval-node is the fake agent, for the
	// agent-control test, which must not wait for the real one.
	fakeBinDir = filepath.Join(dir, "fake")
	if err := os.Mkdir(fakeBinDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, b := range []string{"servalctl", "serval", "serval-ipam", "serval-lab"} {
		if err := os.Symlink(filepath.Join(dir, b), filepath.Join(fakeBinDir, b)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(fakeBinDir, lab.AgentBinary), "./test/e2e/fakeagent")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the fake agent: %v\n%s", err, out)
		return 1
	}
	buildOK = true
	return m.Run()
}

// needRoot skips tests that build namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces")
	}
	if !buildOK {
		t.Fatal("the binaries were not built")
	}
}

// hasAgent says whether serval-node was built.
func hasAgent() bool {
	_, err := os.Stat(filepath.Join(binDir, lab.AgentBinary))
	return err == nil
}

func needAgent(t *testing.T) {
	t.Helper()
	if !hasAgent() {
		t.Skip("needs serval-node (cmd/serval-node, issue 4) for cross-host routing, BGP and policy: not built yet")
	}
}

// labName is unique to this test process, so parallel runs and other
// people's labs never share a namespace.
func labName(t *testing.T, base string) string {
	return fmt.Sprintf("%s%d", base, os.Getpid()%100000)
}

func testOptions(t *testing.T) lab.Options {
	return lab.Options{
		RunRoot: t.TempDir(),
		BinDir:  binDir,
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// upLab brings up topo (YAML) and removes it when the test ends.
func upLab(t *testing.T, name, topo string) (*lab.Lab, lab.Options) {
	t.Helper()
	tp, err := lab.ParseTopology(name+".yaml", []byte("name: "+name+"\n"+topo))
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), name, opts); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	l, err := lab.Up(ctx, tp, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	return l, opts
}

// serval runs the built serval-lab binary and returns its output and exit
// status.
func servalLab(t *testing.T, opts lab.Options, name string, args ...string) (string, int) {
	t.Helper()
	argv := append([]string{"--run-root", opts.RunRoot, "--bin-dir", binDir, "--name", name}, args...)
	cmd := exec.Command(filepath.Join(binDir, "serval-lab"), argv...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("serval-lab %s: %v", strings.Join(args, " "), err)
	}
	return string(out), code
}
