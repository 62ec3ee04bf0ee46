package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/roottest"
	"github.com/servalnet/serval/internal/testbin"
)

// binary is serval-pause, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		_, dir, err := testbin.Build("serval-pause", "./cmd/serval-pause")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "serval-pause")
		return m.Run()
	}())
}

func TestArguments(t *testing.T) {
	out, err := exec.Command(binary, "-v").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "serval-pause ") {
		t.Errorf("serval-pause -v: %q, %v", out, err)
	}
	out, err = exec.Command(binary, "pause").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "usage:") {
		t.Errorf("serval-pause pause: %q, %v; want usage and exit status 2", out, err)
	}
}

// catches says whether process pid has a handler for sig (SigCgt in
// /proc/PID/status): until it has, a signal would kill it, or, as PID 1
// of a namespace, be ignored.
func catches(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("SigCgt of %d: %v", pid, err)
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// proc is a running serval-pause.
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{} // closed once it has exited; then err is Wait's
	err    error
}

// start starts serval-pause, waits until it handles SIGTERM and SIGCHLD,
// and kills it when the test ends if it is still running.
func start(t *testing.T, attr *syscall.SysProcAttr) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary), done: make(chan struct{})}
	p.cmd.SysProcAttr = attr
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !catches(t, p.cmd.Process.Pid, syscall.SIGTERM) || !catches(t, p.cmd.Process.Pid, syscall.SIGCHLD) {
		if time.Now().After(deadline) {
			t.Fatal("serval-pause never installed its signal handlers")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.mustRun(t, 200*time.Millisecond, "on its own")
	return p
}

// mustRun fails t if p exits within d; why says after what.
func (p *proc) mustRun(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("serval-pause exited %s: %v; stderr: %s", why, p.err, p.stderr.String())
	case <-time.After(d):
	}
}

// stop sends sig and checks that p exits 0 soon.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("serval-pause after %v: %v (want exit status 0); stderr: %s", sig, p.err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serval-pause still running 10s after %v", sig)
	}
}

func TestStopSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := start(t, nil)
			// SIGCHLD, with no child, must not stop it.
			if err := p.cmd.Process.Signal(syscall.SIGCHLD); err != nil {
				t.Fatal(err)
			}
			p.mustRun(t, 100*time.Millisecond, "on SIGCHLD")
			p.stop(t, sig)
		})
	}
}

// children lists the pids whose parent is process pid, zombies included.
func children(t *testing.T, pid int) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		all = append(all, strings.Fields(string(b))...)
	}
	return all
}

// As PID 1 of a PID namespace, as in a pod sandbox, serval-pause inherits
// the namespace's orphans and reaps them, and still stops on SIGTERM.
func TestPID1ReapsOrphans(t *testing.T) {
	roottest.NeedRoot(t, "starts serval-pause as PID 1 of a new PID namespace")
	nsenter := roottest.NeedProgram(t, "nsenter", "util-linux")
	p := start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID})
	pid := p.cmd.Process.Pid
	if got := children(t, pid); len(got) != 0 {
		t.Fatalf("serval-pause has children before the test made any: %v", got)
	}

	// A shell in the namespace starts cat in the background and exits:
	// cat's parent is gone, so the namespace's init, serval-pause, becomes
	// its parent. cat blocks reading a FIFO until the test closes its end,
	// and then exits, for serval-pause to reap. (Its output goes to
	// /dev/null: holding nsenter's output pipe, it would keep
	// CombinedOutput from returning until it exited.)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nsenter, "--target", strconv.Itoa(pid), "--pid", "--",
		"/bin/sh", "-c", `cat "$0" </dev/null >/dev/null 2>&1 & exit 0`, fifo).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	orphans := children(t, pid)
	if len(orphans) != 1 {
		t.Fatalf("serval-pause's children after the shell exited: %v, want the one orphaned cat", orphans)
	}
	// Opening the FIFO waits for cat to open it; closing it ends cat.
	opened := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			err = w.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned cat never opened the FIFO")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(children(t, pid)) != 0 {
		if time.Now().After(deadline) {
			st, _ := os.ReadFile("/proc/" + orphans[0] + "/stat")
			t.Fatalf("the orphan %s was never reaped: %s", orphans[0], st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat("/proc/" + orphans[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphan %s is still in /proc: %v", orphans[0], err)
	}
	p.stop(t, syscall.SIGTERM)
}
