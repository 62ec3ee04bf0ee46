package kubeapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMissingBinaryIsAnError(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "noexec")
	if err := os.MkdirAll(notExec, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kube-apiserver", "kubectl"} {
		if err := os.WriteFile(filepath.Join(notExec, name), []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, binDir, missing string
	}{
		{"empty directory", dir, "kube-apiserver"},
		{"no such directory", filepath.Join(dir, "absent"), "kube-apiserver"},
		{"not executable", notExec, "kube-apiserver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(t.Context(), Options{BinDir: tc.binDir, Dir: t.TempDir()})
			if err == nil {
				c.Stop()
				t.Fatal("New started a cluster without binaries")
			}
			var missing *MissingBinaryError
			if !errors.As(err, &missing) {
				t.Fatalf("error %v is not a *MissingBinaryError", err)
			}
			if want := filepath.Join(tc.binDir, tc.missing); missing.Path != want {
				t.Errorf("missing binary %s, want %s", missing.Path, want)
			}
			if !strings.Contains(err.Error(), "scripts/k8s-binaries.sh") {
				t.Errorf("error %q does not say how to build the binaries", err)
			}
		})
	}
}

// TestStopEndsEverything: a cluster of its own, stopped, leaves no process,
// no listener and no directory behind.
func TestStopEndsEverything(t *testing.T) {
	c, err := New(t.Context(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("starting a test cluster: %v", err)
	}
	t.Logf("kube-apiserver ready in %v", c.StartDuration.Round(time.Millisecond))
	pid := c.cmd.Process.Pid
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kube-apiserver pid %d still there after Stop: %v", pid, err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("directory %s still there after Stop: %v", c.Dir, err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after Stop", c.URL)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestRemoveStaleDirs: a cluster directory whose process is gone is removed;
// a living process's, or one without a readable owner, is left alone.
func TestRemoveStaleDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatalf("running true: %v", err)
	}
	cases := []struct {
		dir   string
		owner string // "" for no owner file
		kept  bool
	}{
		{"dead-owner", strconv.Itoa(dead.Process.Pid), false},
		{"living-owner", strconv.Itoa(os.Getpid()), true},
		{"no-owner-file", "", true},
		{"garbage-owner", "not-a-pid", true},
	}
	for _, tc := range cases {
		dir := filepath.Join(tmp, tempDirPrefix+tc.dir)
		if err := os.MkdirAll(filepath.Join(dir, "etcd"), 0o700); err != nil {
			t.Fatal(err)
		}
		if tc.owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tc.owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	removeStaleDirs(testLogger(t))
	for _, tc := range cases {
		_, err := os.Stat(filepath.Join(tmp, tempDirPrefix+tc.dir))
		if kept := err == nil; kept != tc.kept {
			t.Errorf("%s: directory kept %v, want %v (%v)", tc.dir, kept, tc.kept, err)
		}
	}
}

// TestStartFailureReportsTheLog: an API server that cannot start makes New
// fail with the end of its log.
func TestStartFailureReportsTheLog(t *testing.T) {
	dir := t.TempDir()
	c, err := New(t.Context(), Options{Dir: dir, Logger: testLogger(t), ExtraArgs: []string{"--no-such-flag=1"}})
	if err == nil {
		c.Stop()
		t.Fatal("New succeeded with an unknown API server flag")
	}
	if c != nil {
		t.Errorf("New returned a cluster with its error %v", err)
	}
	for _, want := range []string{"exited before it was ready", "unknown flag: --no-such-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// testLogger logs through t while t runs.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
