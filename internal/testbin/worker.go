package testbin

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

// Worker is the running test binary started again as a worker process,
// for tests that need real concurrent processes (several "hosts"
// allocating addresses from one etcd at once). The test puts a variable
// in the worker's environment; the worker's TestMain sees it and runs the
// worker instead of the tests. The worker calls WorkerReady, which tells
// the test that it has started and holds it until the test calls Go, so
// that all workers begin together; what it prints after that is its
// Output.
type Worker struct {
	Cmd    *exec.Cmd
	Stderr bytes.Buffer // what the worker said on failure
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// StartWorker starts the test binary, running no test, with env
// (KEY=VALUE) added to this process's environment. The worker is killed
// when t ends, if it has not exited by then.
func StartWorker(t testing.TB, env ...string) *Worker {
	t.Helper()
	w := &Worker{Cmd: exec.Command(os.Args[0], "-test.run=^$")}
	w.Cmd.Env = append(os.Environ(), env...)
	w.Cmd.Stderr = &w.Stderr
	var err error
	if w.stdin, err = w.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := w.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.stdout = bufio.NewReader(out)
	if err := w.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Cmd.Process.Kill(); _ = w.Cmd.Wait() })
	return w
}

// WaitReady returns once the worker has called WorkerReady. A worker that
// exits or says anything else first is stopped, and the error carries
// what it said on stderr.
func (w *Worker) WaitReady() error {
	line, err := w.stdout.ReadString('\n')
	if err == nil && line == workerReady {
		return nil
	}
	// Stderr is complete only once Wait has returned.
	_ = w.Cmd.Process.Kill()
	_ = w.Cmd.Wait()
	return fmt.Errorf("the worker did not get ready: %q, %v\n%s", line, err, w.Stderr.String())
}

// Go lets the worker past WorkerReady.
func (w *Worker) Go() error {
	_, err := io.WriteString(w.stdin, workerGo)
	return err
}

// Output is what the worker prints after WorkerReady, up to its exit (or
// its death: a killed worker's output ends where it was killed).
func (w *Worker) Output() string {
	rest, _ := io.ReadAll(w.stdout)
	return string(rest)
}

const (
	workerReady = "ready\n"
	workerGo    = "go\n"
)

// WorkerReady, in a worker, tells the test that the worker is ready and
// waits until the test calls Go.
func WorkerReady() error {
	fmt.Print(workerReady)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	return nil
}
