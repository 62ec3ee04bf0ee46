package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultRunRoot holds one directory per lab: its state, pidfiles, logs,
// generated configs and the datastore's data. It is on tmpfs, so a reboot
// (which also removes every namespace) leaves nothing behind.
const DefaultRunRoot = "/run/serval-lab"

// Options say where a lab keeps its files and finds its binaries.
type Options struct {
	// RunRoot is the parent of each lab's run directory (DefaultRunRoot
	// when empty).
	RunRoot string
	// BinDir holds servalctl, serval, serval-ipam and (once it exists)
	// serval-node. Empty: the directory of the running executable.
	BinDir string
	// Logger gets progress and diagnostics (slog.Default() when nil).
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.RunRoot == "" {
		o.RunRoot = DefaultRunRoot
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("finding the binaries directory: %w", err)
		}
		o.BinDir = filepath.Dir(exe)
	}
	abs, err := filepath.Abs(o.BinDir)
	if err != nil {
		return o, fmt.Errorf("finding the binaries directory %s: %w", o.BinDir, err)
	}
	o.BinDir = abs
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// State is what a running lab remembers between commands (state.json in
// its run directory).
type State struct {
	Topology     *Topology                 `json:"topology"`
	BinDir       string                    `json:"binDir"`
	EtcdEndpoint string                    `json:"etcdEndpoint"`
	Workloads    map[string]*WorkloadState `json:"workloads"`
	Complete     bool                      `json:"complete"` // bring-up finished
}

// WorkloadState is what CNI ADD gave a workload.
type WorkloadState struct {
	ContainerID string `json:"containerID"`
	IP          string `json:"ip"` // without prefix length
}

// Lab is a running lab. Its methods are not safe for concurrent use except
// where they say so.
type Lab struct {
	Name  string
	Dir   string // run directory
	opts  Options
	log   *slog.Logger
	State State
}

func labDir(opts Options, name string) string { return filepath.Join(opts.RunRoot, name) }

// Open attaches to the running lab called name. An empty name picks the only
// lab there is.
func Open(name string, opts Options) (*Lab, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if name == "" {
		if name, err = onlyLab(opts); err != nil {
			return nil, err
		}
	}
	l := &Lab{Name: name, Dir: labDir(opts, name), opts: opts, log: opts.Logger.With("lab", name)}
	data, err := os.ReadFile(l.statePath())
	if err != nil {
		return nil, fmt.Errorf("lab %q is not running (no %s): %w", name, l.statePath(), err)
	}
	if err := json.Unmarshal(data, &l.State); err != nil {
		return nil, fmt.Errorf("reading lab state %s: %w", l.statePath(), err)
	}
	if l.State.Topology == nil {
		return nil, fmt.Errorf("reading lab state %s: no topology", l.statePath())
	}
	if l.State.Workloads == nil {
		l.State.Workloads = map[string]*WorkloadState{}
	}
	if l.State.BinDir != "" {
		l.opts.BinDir = l.State.BinDir
	}
	return l, nil
}

// List returns the names of the labs that have a run directory or a
// namespace, so that half-removed labs show too.
func List(opts Options) ([]string, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	entries, err := os.ReadDir(opts.RunRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listing labs in %s: %w", opts.RunRoot, err)
	}
	for _, e := range entries {
		if e.IsDir() && labNameRE.MatchString(e.Name()) {
			set[e.Name()] = true
		}
	}
	nss, err := listNetns(Prefix)
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		rest := strings.TrimPrefix(ns, Prefix)
		if i := strings.IndexByte(rest, '-'); i > 0 && labNameRE.MatchString(rest[:i]) {
			set[rest[:i]] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func onlyLab(opts Options) (string, error) {
	names, err := List(opts)
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", errors.New("no lab is running (start one with 'serval-lab up -f TOPOLOGY.yaml')")
	case 1:
		return names[0], nil
	default:
		return "", fmt.Errorf("several labs are running (%s): say which with --name", strings.Join(names, ", "))
	}
}

func (l *Lab) statePath() string        { return filepath.Join(l.Dir, "state.json") }
func (l *Lab) pidPath(id string) string { return filepath.Join(l.Dir, "pids", id+".pid") }
func (l *Lab) logPath(id string) string { return filepath.Join(l.Dir, "logs", id+".log") }
func (l *Lab) bin(name string) string   { return filepath.Join(l.opts.BinDir, name) }

// Netns is the namespace of a member of this lab.
func (l *Lab) Netns(member string) string { return NetnsName(l.Name, member) }

func (l *Lab) saveState() error {
	data, err := json.MarshalIndent(&l.State, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding lab state: %w", err)
	}
	tmp := l.statePath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	if err := os.Rename(tmp, l.statePath()); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	return nil
}

// startDaemon starts argv inside namespace ns, detached (own session, so it
// outlives `serval-lab up`), output to logs/<id>.log, pid to pids/<id>.pid.
// `ip netns exec` execs argv in place, so the pid is argv's own.
func (l *Lab) startDaemon(ns, id string, argv []string) (int, error) {
	return l.runDaemon(id, exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...))
}

// runDaemon starts cmd as daemon id: its own session, its output in the
// daemon's log, its pid in the daemon's pidfile.
func (l *Lab) runDaemon(id string, cmd *exec.Cmd) (int, error) {
	logf, err := os.OpenFile(l.logPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", id, err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s (%s): %w", id, strings.Join(cmd.Args, " "), err)
	}
	pid := cmd.Process.Pid
	// Reap it if it dies while we run, so that alive() does not see a zombie.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(l.pidPath(id), []byte(fmt.Sprintf("%d\n", pid)), 0o644); err != nil {
		return pid, fmt.Errorf("writing pidfile of %s: %w", id, err)
	}
	return pid, nil
}

// daemonPID returns the pid of a running daemon, 0 when it is not running.
func (l *Lab) daemonPID(id string) int {
	pid := readPID(l.pidPath(id))
	if !alive(pid) {
		return 0
	}
	return pid
}

// waitFor polls check every interval until it succeeds, the daemon id (when
// not empty) dies, or timeout passes; errors carry the daemon's last log
// lines.
func (l *Lab) waitFor(ctx context.Context, what, id string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if id != "" && l.daemonPID(id) == 0 {
			return fmt.Errorf("%s: %s exited: %v\n--- last lines of %s:\n%s", what, id, last, l.logPath(id), tail(l.logPath(id), 15))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not ready after %s: %v", what, timeout, last)
			if id != "" {
				msg += fmt.Sprintf("\n--- last lines of %s:\n%s", l.logPath(id), tail(l.logPath(id), 15))
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runIn runs argv in namespace ns and returns its combined output.
func runIn(ctx context.Context, ns string, stdin []byte, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s (in %s): %w: %s", strings.Join(argv, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Servalctl runs servalctl against the lab's datastore, from the datastore
// namespace (the only place, with the hosts, that can reach it: the lab
// never touches the real host's network). stdin may be nil.
func (l *Lab) Servalctl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	argv := append(append([]string{l.bin("servalctl")}, l.datastoreArgs()...), args...)
	return runIn(ctx, l.Netns("datastore"), stdin, argv...)
}

// Down removes everything lab name made: it stops the processes of its
// pidfiles (SIGTERM, then SIGKILL), kills any other process left in one of
// its namespaces, deletes the namespaces (which takes their veths and the
// fabric bridge with them) and the run directory. It works from what it
// finds, not from the state file, so it cleans up after a crash too, and
// it is fine to run twice.
func Down(ctx context.Context, name string, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if name == "" {
		if name, err = onlyLab(opts); err != nil {
			return err
		}
	}
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a lab name", name)
	}
	log := opts.Logger.With("lab", name)
	dir := labDir(opts, name)
	var errs []error

	// Graceful first: etcd and BIRD like a SIGTERM.
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	// kube-apiserver before the etcd under it, which would otherwise
	// wait for its clients until it is killed.
	sort.SliceStable(pidfiles, func(i, j int) bool {
		return filepath.Base(pidfiles[i]) == KubeAPIServerID+".pid" && filepath.Base(pidfiles[j]) != KubeAPIServerID+".pid"
	})
	for _, pf := range pidfiles {
		if pid := readPID(pf); alive(pid) {
			log.Info("stopping", "process", strings.TrimSuffix(filepath.Base(pf), ".pid"), "pid", pid)
			stopPID(pid, 3*time.Second)
		}
	}
	nss, err := listNetns(NetnsPrefix(name))
	if err != nil {
		errs = append(errs, err)
	}
	// Then whatever still lives in our namespaces: listeners, agents whose
	// pidfile was lost, anything a user started with `exec`.
	leftovers := pidsInNetns(nss)
	for pid, ns := range leftovers {
		log.Info("killing leftover process", "pid", pid, "netns", ns)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// SIGKILL is delivered, not done: wait for them to exit, so that down
	// returns with nothing of the lab still running.
	deadline := time.Now().Add(2 * time.Second)
	for pid := range leftovers {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A cluster's nodes: their pods' containers, cgroups and mount
	// namespaces (none in other labs).
	errs = append(errs, removeNodes(name, dir)...)
	// Workloads and hosts before the fabric, so veths go with their ends.
	sort.Slice(nss, func(i, j int) bool { return nsOrder(nss[i]) < nsOrder(nss[j]) })
	for _, ns := range nss {
		if err := runIP(ctx, "netns", "del", ns); err != nil && netnsExists(ns) {
			errs = append(errs, fmt.Errorf("removing namespace %s: %w", ns, err))
		}
	}
	if len(nss) > 0 {
		log.Info("removed namespaces", "count", len(nss))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

func nsOrder(ns string) int {
	switch {
	case strings.HasSuffix(ns, "-fabric"):
		return 2
	case strings.HasSuffix(ns, "-datastore"):
		return 1
	}
	return 0
}
