package labtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/roottest"
	"github.com/servalnet/serval/internal/testbin"
)

// Main is the body of a TestMain for tests that run Serval's binaries in a
// lab. Without root it only runs the tests (each that needs root fails
// through NeedRoot, saying so): building would be wasted. As root it builds cmds into a temporary
// directory, hands that directory and the repository root to ready, runs
// the tests and removes the directory. A failure to build or get ready is
// printed as "name: ..." and is exit status 1, with no test run.
func Main(m *testing.M, name string, cmds []string, ready func(binDir, repo string) error) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	start := time.Now()
	repo, dir, err := testbin.Build("serval-"+name, cmds...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "%s: built %s in %s\n", name, strings.Join(cmds, " "), time.Since(start).Round(100*time.Millisecond))
	if err := ready(dir, repo); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return m.Run()
}

// NeedRoot fails t unless this process is root (roottest.NeedRoot): a lab
// test that skipped would pass without testing anything. Main builds the
// binaries only as root, so past this check they are there.
func NeedRoot(t testing.TB) {
	t.Helper()
	roottest.NeedRoot(t, "the lab creates network namespaces")
}

// Logger writes records from level up into t's log, where they show next
// to the failure they explain.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Options are lab options private to t: a run root in t's temporary
// directory (removed with it), the binaries in binDir, progress in t's log.
func Options(t testing.TB, binDir string) lab.Options {
	return lab.Options{RunRoot: t.TempDir(), BinDir: binDir, Logger: Logger(t, slog.LevelInfo)}
}

// Up brings up, within timeout, the lab named name that topo (topology
// YAML without the name) describes, and removes it with opts when t ends,
// even when bringing it up failed halfway.
func Up(t testing.TB, name, topo string, opts lab.Options, timeout time.Duration) *lab.Lab {
	t.Helper()
	tp, err := lab.ParseTopology(name+".yaml", []byte("name: "+name+"\n"+topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), name, opts); err != nil {
			t.Errorf("removing lab %s: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, tp, opts)
	if err != nil {
		t.Fatalf("lab %s up: %v", name, err)
	}
	t.Logf("lab %s up in %s", name, time.Since(start).Round(time.Millisecond))
	return l
}
