package containerdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/ociimage"
	"github.com/servalnet/serval/internal/roottest"
)

// Daemon is a running private containerd.
type Daemon struct {
	// Dir holds everything of it: config.toml, root/, state/, the socket
	// and containerd.log.
	Dir string
	// Address is its gRPC socket.
	Address string
	// CtrPath is ctr's path.
	CtrPath string

	cmd *exec.Cmd // containerd
}

// programs are what Start needs; Debian's containerd package has all but
// runc.
var programs = []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc"}

// ctrTimeout bounds one ctr command: a hung containerd fails the test
// instead of stalling it.
const ctrTimeout = 30 * time.Second

// Start starts a private containerd and stops it, with everything it
// made, when t ends.
func Start(t testing.TB) *Daemon {
	t.Helper()
	roottest.NeedRoot(t, "runs containerd and containers")
	paths := map[string]string{}
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("needs %s (%v): apt-get install containerd runc (scripts/install-deps.sh installs them)", p, err)
		}
		paths[p] = path
	}
	// Short, not t.TempDir(): the socket's path must fit in sun_path (108
	// bytes), and t.TempDir's holds the test's name.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Dir: dir, Address: filepath.Join(dir, "containerd.sock"), CtrPath: paths["ctr"]}
	// Cleanups run last-registered first: delete the tasks and containers
	// through containerd, then stop it, then sweep up what is left.
	t.Cleanup(func() { d.sweep(t) })

	config := fmt.Sprintf(`# A private containerd of a test (internal/containerdtest).
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.Address, filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paths["containerd"], "--config", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a ^C to the test reaches the test,
	// whose cleanup stops containerd in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting containerd: %v", err)
	}
	logFile.Close()
	d.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { stop(t, cmd, exited) })

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := d.Ctr(context.Background(), "default", "version")
		if err == nil {
			t.Cleanup(func() { d.deleteAll(t) })
			return d
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("containerd exited at start: %v\n%s", werr, d.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not answering after 20s: %v\n%s", err, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends containerd: SIGTERM, then SIGKILL after 10s.
func stop(t testing.TB, cmd *exec.Cmd, exited chan error) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("containerd still running 10s after SIGTERM: killing it")
		cmd.Process.Kill()
		<-exited
	}
}

// Log is what containerd has logged.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "containerd.log"))
	return string(b)
}

// Client is an ociimage.Containerd for this containerd's namespace ns.
func (d *Daemon) Client(ns string) ociimage.Containerd {
	return ociimage.Containerd{Ctr: d.CtrPath, Address: d.Address, Namespace: ns}
}

// Ctr runs ctr against this containerd in namespace ns and returns its
// combined output; the error holds the output too.
func (d *Daemon) Ctr(ctx context.Context, ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ctrTimeout)
	defer cancel()
	full := append([]string{"--address", d.Address, "--namespace", ns}, args...)
	out, err := exec.CommandContext(ctx, d.CtrPath, full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(full, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustCtr is Ctr that fails t on error.
func (d *Daemon) MustCtr(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := d.Ctr(context.Background(), ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Run runs ctr run in namespace ns (args as ctr run's: [FLAGS] IMAGE ID
// [COMMAND ARGS...]) with this containerd's own runc state directory and
// FIFO directory: by default runc keeps its state in
// /run/containerd/runc/NS and ctr its FIFOs in /run/containerd/fifo,
// shared with every containerd of the machine, so that a test's container
// ID could meet another's.
func (d *Daemon) Run(ctx context.Context, ns string, args ...string) (string, error) {
	full := append([]string{"run", "--runc-root", filepath.Join(d.Dir, "runc"), "--fifo-dir", filepath.Join(d.Dir, "fifo")}, args...)
	return d.Ctr(ctx, ns, full...)
}

// MustRun is Run that fails t on error.
func (d *Daemon) MustRun(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := d.Run(context.Background(), ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deleteAll deletes every task (killing it) and every container, in
// every namespace, which ends the shims and removes the containers'
// snapshots and mounts.
func (d *Daemon) deleteAll(t testing.TB) {
	ctx := context.Background()
	nss, err := d.Ctr(ctx, "default", "namespaces", "ls", "--quiet")
	if err != nil {
		t.Logf("containerdtest: %v", err)
		return
	}
	for _, ns := range strings.Fields(nss) {
		tasks, err := d.Ctr(ctx, ns, "tasks", "ls", "--quiet")
		if err != nil {
			t.Logf("containerdtest: %v", err)
		}
		for _, id := range strings.Fields(tasks) {
			if _, err := d.Ctr(ctx, ns, "tasks", "delete", "--force", id); err != nil {
				t.Logf("containerdtest: %v", err)
			}
		}
		containers, err := d.Ctr(ctx, ns, "containers", "ls", "--quiet")
		if err != nil {
			t.Logf("containerdtest: %v", err)
		}
		for _, id := range strings.Fields(containers) {
			if _, err := d.Ctr(ctx, ns, "containers", "delete", id); err != nil {
				t.Logf("containerdtest: %v", err)
			}
		}
	}
}

// sweep, with containerd stopped, kills what could still be running of it
// (shims, containers' processes), detaches the mounts under Dir and
// removes Dir. Normally there is nothing left but Dir.
func (d *Daemon) sweep(t testing.TB) {
	var sockets []string
	for _, pid := range d.leftovers() {
		t.Logf("containerdtest: killing leftover process %d", pid)
		sockets = append(sockets, listeningSockets(pid)...)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// A killed shim leaves its socket, which is not under Dir
	// (/run/containerd/s/HASH).
	for _, s := range sockets {
		if err := os.Remove(s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("removing the socket of a killed shim: %v", err)
		}
	}
	for _, m := range mountsUnder(d.Dir) {
		t.Logf("containerdtest: detaching leftover mount %s", m)
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Errorf("detaching %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("removing %s: %v", d.Dir, err)
	}
}

// leftovers are the processes of this containerd: its shims (their
// command line names its socket) and the containers' processes, whose
// root is an overlay mount of a snapshot under Dir. (/proc/PID/root
// cannot tell: it reads "/" from outside the container's mount
// namespace.)
func (d *Daemon) leftovers() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Contains(cmdline, []byte("\x00"+d.Address+"\x00")) || rootUnder(pid, d.Dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rootUnder says whether process pid's root directory is a mount whose
// source or options name a path under dir.
func rootUnder(pid int, dir string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != "/" {
			continue
		}
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE SOURCE SUPEROPTIONS
		if _, after, ok := strings.Cut(line, " - "); ok && strings.Contains(after, dir+"/") {
			return true
		}
	}
	return false
}

// listeningSockets are the paths of the Unix sockets process pid listens
// on: its descriptors' socket inodes, looked up in its network
// namespace's table of Unix sockets.
func listeningSockets(pid int) []string {
	proc := "/proc/" + strconv.Itoa(pid)
	fds, _ := os.ReadDir(proc + "/fd")
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(proc + "/fd/" + fd.Name())
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	table, err := os.ReadFile(proc + "/net/unix")
	if err != nil {
		return nil
	}
	var paths []string
	for _, line := range strings.Split(string(table), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path; flag 00010000
		// is __SO_ACCEPTCON: listening.
		f := strings.Fields(line)
		if len(f) == 8 && f[3] == "00010000" && inodes[f[6]] && strings.HasPrefix(f[7], "/") {
			paths = append(paths, f[7])
		}
	}
	return paths
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := unescapeMountinfo(f[4]); strings.HasPrefix(mp, dir+"/") {
			ms = append(ms, mp)
		}
	}
	// Later mounts are listed later and may sit on earlier ones.
	for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
		ms[i], ms[j] = ms[j], ms[i]
	}
	return ms
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a blank).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
