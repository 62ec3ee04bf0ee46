package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A node's mount namespace and cgroups (see kubenode.go): made by up,
// removed by down from what it finds, so that a lab that died half-built
// is cleaned up as well.

// cgroupRoot is where the machine's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// makeNodeMountNS makes host's mount namespace and keeps it in its file.
func (l *Lab) makeNodeMountNS(ctx context.Context, host string) error {
	dir := mountNSDir(l.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	// unshare binds the namespace to a file only on a private mount.
	if !isMountPoint(dir) {
		if err := run(ctx, "mount", "--bind", dir, dir); err != nil {
			return err
		}
		if err := run(ctx, "mount", "--make-private", dir); err != nil {
			return err
		}
	}
	file := l.nodeMountNS(host)
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		return fmt.Errorf("making %s: %w", file, err)
	}
	if err := run(ctx, "unshare", "--mount="+file, "--propagation", "private", "true"); err != nil {
		return err
	}
	return run(ctx, "nsenter", "--mount="+file, "--net="+filepath.Join(netnsDir, l.Netns(host)), "--", "sh", "-euc", nodeMountScript(l.nodeDir(host)))
}

// nodeMountScript sets up a node's mount namespace from inside it (and
// inside the host's network namespace, whose interfaces a sysfs mounted
// there shows).
func nodeMountScript(nodeDir string) string {
	hold := filepath.Join(nodeDir, "private", "cgroup")
	s := []string{
		// A new /sys for the host's network namespace, with the machine's
		// cgroup hierarchies moved back under it.
		"mkdir -p " + hold,
		"mount --rbind " + cgroupRoot + " " + hold,
		"umount -l /sys",
		"mount -t sysfs sysfs /sys",
		"mount --move " + hold + " " + cgroupRoot,
	}
	for _, d := range nodePrivateDirs {
		own := filepath.Join(nodeDir, "private", strings.ReplaceAll(strings.TrimPrefix(d, "/"), "/", "_"))
		s = append(s, "mkdir -p "+own+" "+d, "mount --bind "+own+" "+d)
	}
	// Volumes kubelet mounts under its root must reach the containers'
	// mount namespaces (mount propagation).
	s = append(s, "mount --make-rshared /var/lib/kubelet")
	return strings.Join(s, "\n")
}

// makeNodeCgroup makes the cgroup a node's kubelet puts its pods under,
// name, in every hierarchy (cgroup v1) or in the unified one (v2).
func makeNodeCgroup(name string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		d := filepath.Join(h, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("making cgroup %s: %w", d, err)
		}
		// A new v1 cpuset has no CPUs or memory nodes, and nothing under
		// it could run: give it its parent's.
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return fmt.Errorf("reading %s: %w", filepath.Join(h, f), err)
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return fmt.Errorf("writing %s: %w", filepath.Join(d, f), err)
				}
			}
		}
	}
	return nil
}

// cgroupHierarchies are the directories of the machine's cgroup
// hierarchies kubelet uses: /sys/fs/cgroup itself with cgroup v2, else
// each v1 hierarchy mounted under it (a v2 one beside them, as hybrid
// systems have, is not kubelet's).
func cgroupHierarchies() ([]string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", cgroupRoot, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return []string{cgroupRoot}, nil
	}
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", cgroupRoot, err)
	}
	var hs []string
	for _, e := range entries {
		d := filepath.Join(cgroupRoot, e.Name())
		if err := unix.Statfs(d, &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC && isMountPoint(d) {
			hs = append(hs, d)
		}
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy is mounted under %s", cgroupRoot)
	}
	return hs, nil
}

// removeNodes removes what the nodes of the lab name, with run directory
// dir, left once their daemons are stopped: every process still in their
// cgroups (the pods' containers), the cgroups, and their mount
// namespaces.
func removeNodes(name, dir string) []error {
	var errs []error
	hs, err := cgroupHierarchies()
	if err != nil {
		errs = append(errs, err)
	}
	for _, h := range hs {
		nodes, _ := filepath.Glob(filepath.Join(h, NetnsPrefix(name)+"*"))
		for _, n := range nodes {
			if err := removeCgroup(n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	mnt := mountNSDir(dir)
	files, _ := filepath.Glob(filepath.Join(mnt, "*"))
	for _, f := range files {
		if err := unix.Unmount(f, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("releasing the mount namespace %s: %w", f, err))
		}
	}
	if isMountPoint(mnt) {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mnt, err))
		}
	}
	return errs
}

// removeCgroup kills every process in the cgroup tree under d and removes
// it, deepest first.
func removeCgroup(d string) error {
	var dirs []string
	_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range dirs {
		for {
			pids := cgroupPIDs(c)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			err := unix.Rmdir(c)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("removing cgroup %s (processes %v): %w", c, pids, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func cgroupPIDs(d string) []int {
	data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isMountPoint says whether p is a mount point of this mount namespace
// (a bind mount of a directory onto itself is one too).
func isMountPoint(p string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root mount-point ...
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

// run runs a command, its output in the error.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
