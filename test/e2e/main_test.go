// Package e2e runs end-to-end tests on serval-lab: real namespaces, the
// real binaries (built once by TestMain into a temporary directory), the
// real kernel. They need root and skip without it.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labtest"
	"github.com/servalnet/serval/internal/testbin"
)

var (
	binDir string // the built binaries
	// fakeBinDir has the same binaries, with test/e2e/fakeagent as serval-node.
	fakeBinDir string
	repo       string // repository root
)

func TestMain(m *testing.M) {
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-lab", "./cmd/serval-node"}
	os.Exit(labtest.Main(m, "e2e", cmds, func(dir, root string) error {
		binDir, repo = dir, root
		return makeFakeBinDir()
	}))
}

// makeFakeBinDir makes fakeBinDir, where serval-node is the fake agent,
// for the agent-control test, which must not wait for the real one.
func makeFakeBinDir() error {
	fakeBinDir = filepath.Join(binDir, "fake")
	if err := os.Mkdir(fakeBinDir, 0o755); err != nil {
		return err
	}
	for _, b := range []string{"servalctl", "serval", "serval-ipam", "serval-lab"} {
		if err := os.Symlink(filepath.Join(binDir, b), filepath.Join(fakeBinDir, b)); err != nil {
			return err
		}
	}
	if err := testbin.GoBuild(repo, filepath.Join(fakeBinDir, lab.AgentBinary), "./test/e2e/fakeagent"); err != nil {
		return fmt.Errorf("the fake agent: %w", err)
	}
	return nil
}

// needRoot skips tests that build namespaces.
var needRoot = labtest.NeedRoot

// hasAgent says whether serval-node was built.
func hasAgent() bool {
	_, err := os.Stat(filepath.Join(binDir, lab.AgentBinary))
	return err == nil
}

func needAgent(t *testing.T) {
	t.Helper()
	if !hasAgent() {
		// TestMain builds it; a missing agent is a broken build, not a reason to skip.
		t.Fatalf("serval-node is missing from %s: cross-host routing, BGP and policy cannot be tested", binDir)
	}
}

// labName is unique to this test process, so parallel runs and other
// people's labs never share a namespace.
func labName(t *testing.T, base string) string {
	return fmt.Sprintf("%s%d", base, os.Getpid()%100000)
}

func testOptions(t *testing.T) lab.Options { return labtest.Options(t, binDir) }

// upLab brings up topo (YAML) and removes it when the test ends.
func upLab(t *testing.T, name, topo string) (*lab.Lab, lab.Options) {
	t.Helper()
	opts := testOptions(t)
	return labtest.Up(t, name, topo, opts, 90*time.Second), opts
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
