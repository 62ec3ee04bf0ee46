package pause

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run waits for SIGINT or SIGTERM, reaping every child that exits
// meanwhile, and returns the exit code: 0. A failure to reap is written to
// errOut and does not stop it: a pod's sandbox must outlive its troubles.
func Run(errOut io.Writer) int {
	// Two channels, because a full channel drops what signal.Notify would
	// put in it: a burst of SIGCHLD must never hide a SIGTERM.
	stop := make(chan os.Signal, 1)
	child := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	signal.Notify(child, syscall.SIGCHLD)
	reap := func() {
		if _, err := Reap(); err != nil {
			fmt.Fprintf(errOut, "serval-pause: reaping children: %v\n", err)
		}
	}
	// A child that exited before the handler was installed sent a SIGCHLD
	// nobody received.
	reap()
	Wait(stop, child, reap)
	return 0
}

// Wait returns the first signal that arrives on stop, calling reap each
// time one arrives on child until then.
func Wait(stop, child <-chan os.Signal, reap func()) os.Signal {
	for {
		select {
		case s := <-stop:
			return s
		case <-child:
			reap()
		}
	}
}

// Reap collects every child that has exited, without waiting for those
// still running, and returns how many it collected. Having none left is
// not an error. It reaps with waitpid(-1), so it must not share a process
// with code that waits for its own children (os/exec).
func Reap() (int, error) {
	n := 0
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			return n, nil
		case err != nil:
			return n, err
		case pid <= 0: // children, none of them exited yet
			return n, nil
		}
		n++
	}
}
