package testbin

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

const envWorker = "SERVAL_TESTBIN_WORKER" // "echo" or "silent"

func TestMain(m *testing.M) {
	switch os.Getenv(envWorker) {
	case "":
		os.Exit(m.Run())
	case "echo":
		if err := WorkerReady(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("after go", os.Getenv("SERVAL_TESTBIN_WORD"))
		os.Exit(0)
	default: // exits without saying ready
		fmt.Fprintln(os.Stderr, "not ready on purpose")
		os.Exit(3)
	}
}

// TestWorker: a worker gets its environment, Go lets it past
// WorkerReady, and its Output is what it printed after; one that exits
// without WorkerReady is an error of WaitReady that carries what it said.
func TestWorker(t *testing.T) {
	w := StartWorker(t, envWorker+"=echo", "SERVAL_TESTBIN_WORD=hello")
	if err := w.WaitReady(); err != nil {
		t.Fatal(err)
	}
	if err := w.Go(); err != nil {
		t.Fatal(err)
	}
	if out := w.Output(); out != "after go hello\n" {
		t.Errorf("output %q, want %q", out, "after go hello\n")
	}
	if err := w.Cmd.Wait(); err != nil {
		t.Errorf("worker: %v\n%s", err, w.Stderr.String())
	}

	bad := StartWorker(t, envWorker+"=silent")
	err := bad.WaitReady()
	if err == nil {
		t.Fatal("WaitReady of a worker that never got ready returned nil")
	}
	if want := "not ready on purpose"; !strings.Contains(err.Error(), want) {
		t.Errorf("WaitReady error %q does not carry the worker's %q", err, want)
	}
}
