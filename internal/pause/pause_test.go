package pause

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	tests := []struct {
		name     string
		children int // SIGCHLDs before the stop signal
		stop     os.Signal
	}{
		{"SIGTERM at once", 0, syscall.SIGTERM},
		{"SIGINT at once", 0, syscall.SIGINT},
		{"SIGTERM after three children", 3, syscall.SIGTERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Unbuffered, and sent in order: each send completes only
			// once Wait has taken it, so the order Wait sees is this one.
			stop, child := make(chan os.Signal), make(chan os.Signal)
			reaps := 0
			got := make(chan os.Signal, 1)
			go func() { got <- Wait(stop, child, func() { reaps++ }) }()
			for i := 0; i < tt.children; i++ {
				child <- syscall.SIGCHLD
			}
			stop <- tt.stop
			select {
			case s := <-got:
				if s != tt.stop || reaps != tt.children {
					t.Errorf("Wait returned %v after %d reaps, want %v after %d", s, reaps, tt.stop, tt.children)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not return after the stop signal")
			}
		})
	}
}

// procState is the state letter of /proc/PID/stat ("Z" for a zombie), ""
// once the process is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// PID (COMM) STATE ...: COMM may hold blanks, so after the last ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func TestReap(t *testing.T) {
	// Children started without os/exec, which would wait for them itself.
	var pids []int
	for i := 0; i < 3; i++ {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		deadline := time.Now().Add(5 * time.Second)
		for procState(pid) != "Z" {
			if time.Now().After(deadline) {
				t.Fatalf("child %d never exited (state %q)", pid, procState(pid))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	n, err := Reap()
	if err != nil || n != len(pids) {
		t.Fatalf("Reap() = %d, %v; want %d, nil", n, err, len(pids))
	}
	for _, pid := range pids {
		if s := procState(pid); s != "" {
			t.Errorf("child %d still there after Reap (state %q)", pid, s)
		}
	}
	if n, err := Reap(); n != 0 || err != nil {
		t.Errorf("Reap() with no children = %d, %v; want 0, nil", n, err)
	}

	// A child still running is left alone, and Reap does not wait for it.
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "0.3"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if n, err := Reap(); n != 0 || err != nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("Reap() with a running child = %d, %v after %v; want 0, nil at once", n, err, time.Since(start))
	}
	var status syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &status, 0, nil); err != nil {
		t.Fatal(err)
	}
}
