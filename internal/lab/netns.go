package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// Prefix starts the name of every namespace any lab creates; NetnsPrefix
// adds the lab's name, so that `down` finds exactly one lab's leftovers
// (lab names have no '-', so "svl-a-" never matches lab "a-b").
const Prefix = "svl-"

// NetnsPrefix is the prefix of every namespace of lab name.
func NetnsPrefix(name string) string { return Prefix + name + "-" }

// NetnsName is the namespace of one member (host, workload, router,
// "fabric" or "datastore") of lab name.
func NetnsName(lab, member string) string { return NetnsPrefix(lab) + member }

// runIP runs `ip args...` and returns its error with ip's own message, which
// says what was wrong better than an exit status.
func runIP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// listNetns returns the names of the namespaces that start with prefix.
func listNetns(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing network namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// InNetns runs fn on an OS thread that has entered namespace name. Sockets
// fn creates belong to that namespace for their whole life, wherever they
// are used afterwards, and processes it starts (os/exec forks from the
// calling thread) start there. Goroutines fn starts do NOT run in the
// namespace. The thread is never unlocked, so the Go runtime throws it away
// when fn returns instead of reusing a thread in the wrong namespace.
func InNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join(netnsDir, name))
		if err != nil {
			errc <- fmt.Errorf("opening network namespace %s: %w", name, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// writeSysctl sets a net sysctl inside a namespace: /proc/sys/net shows the
// namespace of the thread that opens it.
func writeSysctl(ns, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return InNetns(ns, func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("setting %s=%s in %s: %w", key, value, ns, err)
		}
		return nil
	})
}

// netnsInode returns the inode identifying a named namespace, as the
// "net:[N]" links of /proc/PID/ns/net show it.
func netnsInode(name string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// pidsInNetns finds every process whose network namespace is one of names.
// This is what makes `down` work after a crash: whatever was started in a
// lab namespace is found, pidfile or not.
func pidsInNetns(names []string) map[int]string {
	inodes := map[string]string{}
	for _, n := range names {
		if ino, err := netnsInode(n); err == nil {
			inodes[fmt.Sprintf("net:[%d]", ino)] = n
		}
	}
	found := map[int]string{}
	if len(inodes) == 0 {
		return found
	}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue
		}
		if ns, ok := inodes[link]; ok {
			found[pid] = ns
		}
	}
	return found
}

// alive says whether pid runs and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain spaces or parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	return data[i+2] != 'Z'
}

// stopPID sends SIGTERM, waits up to grace, then SIGKILL. It reports whether
// the process had to be killed.
func stopPID(pid int, grace time.Duration) bool {
	if !alive(pid) {
		return false
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 40 && alive(pid); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	return true
}

// readPID reads a pidfile; 0 when missing or unreadable.
func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// tail returns the last n lines of a file, for error messages about a
// process that failed to start.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
