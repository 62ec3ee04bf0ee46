package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/nodestatus"
	"github.com/servalnet/serval/internal/roottest"
)

// freshRoot makes an empty system root: merged /usr, /var/run -> /run,
// an empty dpkg database, and systemd's own units (so that systemd-analyze
// verify --root can resolve the targets Serval's units name). It returns
// its path.
func freshRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "etc/systemd/system/multi-user.target.wants",
		"proc", "run", "tmp", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "var/run": "../run"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	output(t, "cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr/lib/"))
	// A system's /usr/bin is never empty (else dpkg removes it with the
	// package's last file there): a shell, as every Debian root has.
	output(t, "cp", "-a", "/usr/bin/dash", filepath.Join(root, "usr/bin/"))
	if err := os.Symlink("dash", filepath.Join(root, "usr/bin/sh")); err != nil {
		t.Fatal(err)
	}
	return root
}

// tree lists every path under root with its type, permissions and, for a
// link, its target.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		rel, _ := filepath.Rel(root, p)
		m["/"+rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return m
}

// dpkg runs dpkg on root; its maintainer scripts run here, with DPKG_ROOT
// set to root. stdin is empty: a conffile prompt fails the call.
func dpkg(t *testing.T, root string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"--root=" + root, "--force-script-chrootless"}, args...)
	out, err := exec.CommandContext(ctx, "dpkg", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("dpkg %s:\n%s", strings.Join(args[2:], " "), out)
}

// status is the package's dpkg status in root ("" when dpkg knows nothing
// of it).
func status(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f=${Status}", "serval").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestInstall(t *testing.T) {
	roottest.NeedRoot(t, "installs a package into a root of its own, runs its binaries chrooted there in a network namespace")
	roottest.NeedProgram(t, "dpkg", "dpkg")
	roottest.NeedProgram(t, "dpkg-query", "dpkg")
	roottest.NeedProgram(t, "systemd-analyze", "systemd")
	roottest.NeedProgram(t, "ip", "iproute2")
	roottest.NeedProgram(t, "chroot", "coreutils")
	roottest.NeedProgram(t, "mount", "mount")

	root := freshRoot(t)
	before := tree(t, root)

	dpkg(t, root, "--install", deb)
	if s := status(t, root); s != "install ok installed" {
		t.Fatalf("after install, dpkg status %q, want install ok installed", s)
	}
	for path, mode := range shipped {
		info, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("installed: %v", err)
		} else if info.Mode().String() != mode {
			t.Errorf("installed %s has mode %s, want %s", path, info.Mode(), mode)
		}
	}
	// Installing enables and starts nothing (docs/PACKAGING.md).
	if links, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*.wants/serval-*")); len(links) > 0 {
		t.Errorf("installing enabled units: %q", links)
	}

	t.Run("verify", func(t *testing.T) { verifyUnits(t, root) })
	t.Run("run", func(t *testing.T) { runUnits(t, root) })

	// What an administrator does: edit the configuration, add a BGP
	// password, enable the agent.
	nodeEnv := filepath.Join(root, "etc/serval/serval-node.env")
	edit := "SERVAL_LOG_LEVEL=debug\n"
	appendFile(t, nodeEnv, edit)
	secret := filepath.Join(root, "etc/serval/secrets/bgp-passwords/tor1")
	if err := os.MkdirAll(filepath.Dir(secret), 0o700); err != nil {
		t.Fatal(err)
	}
	appendFile(t, secret, "s3cret")
	if err := os.Symlink("/lib/systemd/system/serval-node.service",
		filepath.Join(root, "etc/systemd/system/multi-user.target.wants/serval-node.service")); err != nil {
		t.Fatal(err)
	}

	// A reinstall (as an upgrade does) keeps the edited conffile, without
	// asking: the package's copy did not change.
	dpkg(t, root, "--install", deb)
	if b, _ := os.ReadFile(nodeEnv); !strings.HasSuffix(string(b), edit) {
		t.Errorf("after a reinstall, serval-node.env lost the administrator's edit:\n%s", b)
	}

	dpkg(t, root, "--remove", "serval")
	if s := status(t, root); s != "deinstall ok config-files" {
		t.Errorf("after remove, dpkg status %q, want deinstall ok config-files", s)
	}
	for path := range shipped {
		if kept := slices.Contains(conffiles, path); exists(filepath.Join(root, path)) != kept {
			t.Errorf("after remove, %s is there: %v, want %v (only conffiles stay)", path, !kept, kept)
		}
	}
	if b, _ := os.ReadFile(nodeEnv); !strings.HasSuffix(string(b), edit) {
		t.Errorf("after remove, serval-node.env lost the administrator's edit:\n%s", b)
	}
	for _, p := range []string{secret, "var/lib/serval/etcd"} {
		if !exists(filepath.Join(root, strings.TrimPrefix(p, root))) {
			t.Errorf("remove deleted %s; only purge may", p)
		}
	}

	dpkg(t, root, "--purge", "serval")
	if s := status(t, root); s != "" {
		t.Errorf("after purge, dpkg status %q, want none", s)
	}
	after := tree(t, root)
	for path, desc := range after {
		if strings.Contains(path, "serval") {
			t.Errorf("after purge, %s (%s) is left", path, desc)
			continue
		}
		// dpkg's own files (locks, the old status) are not Serval's.
		if _, ok := before[path]; !ok && !strings.HasPrefix(path, "/var/lib/dpkg/") {
			t.Errorf("after purge, %s (%s) is there and was not before the install", path, desc)
		}
	}
	for path, desc := range before {
		if after[path] != desc {
			t.Errorf("after purge, %s is %q, before the install %q", path, after[path], desc)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status")); strings.Contains(string(b), "serval") {
		t.Errorf("after purge, dpkg's status still names serval:\n%s", b)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// verifyUnits runs systemd-analyze verify on the units as installed in
// root, and on broken copies of them, which must fail it. A broken copy
// goes to root's /etc/systemd/system under the unit's own name, where an
// administrator's override goes, so that verify reads it instead of the
// package's.
func verifyUnits(t *testing.T, root string) {
	read := func(unit string) string {
		b, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", unit))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	node, datastore := read("serval-node.service"), read("serval-datastore.service")
	mustReplace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("the unit has no %q to break", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	for _, tc := range []struct {
		name, unit string
		broken     string // "" verifies the unit as installed
	}{
		{name: "serval-node as installed", unit: "serval-node.service"},
		{name: "serval-datastore as installed", unit: "serval-datastore.service"},
		{name: "binary missing", unit: "serval-node.service",
			broken: mustReplace(node, "ExecStart=/usr/bin/serval-node", "ExecStart=/usr/bin/serval-nodes")},
		{name: "datastore binary missing", unit: "serval-datastore.service",
			broken: mustReplace(datastore, "ExecStart=/usr/bin/servalctl", "ExecStart=/usr/sbin/servalctl")},
		{name: "no ExecStart", unit: "serval-node.service",
			broken: mustReplace(node, "ExecStart=/usr/bin/serval-node\n", "")},
		{name: "misspelt key", unit: "serval-node.service",
			broken: mustReplace(node, "Restart=on-failure", "Restrat=on-failure")},
		{name: "bad Type", unit: "serval-datastore.service",
			broken: mustReplace(datastore, "Type=simple", "Type=sideways")},
		{name: "bad hardening value", unit: "serval-node.service",
			broken: mustReplace(node, "ProtectSystem=full", "ProtectSystem=fully")},
		{name: "requires a unit that does not exist", unit: "serval-node.service",
			broken: mustReplace(node, "[Unit]\n", "[Unit]\nRequires=serval-nothing.service\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.broken != "" {
				override := filepath.Join(root, "etc/systemd/system", tc.unit)
				if err := os.WriteFile(override, []byte(tc.broken), 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(override)
			}
			// --man=no: the man pages are in root, and man(1) would
			// look for them in this machine's.
			out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, tc.unit).CombinedOutput()
			// verify exits 0 on what it ignores (an unknown key, a bad
			// value): any message is a failure too.
			passed := err == nil && len(strings.TrimSpace(string(out))) == 0
			if want := tc.broken == ""; passed != want {
				t.Errorf("systemd-analyze verify %s: passed %v, want %v (%v)\n%s", tc.unit, passed, want, err, out)
			}
		})
	}
}

// service is one unit's ExecStart= with the environment it gets.
type service struct {
	argv []string
	env  []string
}

// readUnit reads unit's ExecStart= and EnvironmentFile= in root, and
// expands the command line as systemd does for the forms Serval's units
// use: a word "$NAME" becomes the variable's value split into words.
func readUnit(t *testing.T, root, unit string) service {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", unit))
	if err != nil {
		t.Fatal(err)
	}
	var exec string
	vars := map[string]string{}
	svc := service{env: []string{"PATH=/usr/bin:/usr/sbin:/bin:/sbin", "LANG=C.UTF-8"}}
	for _, line := range strings.Split(string(b), "\n") {
		key, val, _ := strings.Cut(line, "=")
		switch key {
		case "ExecStart":
			exec = val
		case "EnvironmentFile":
			f, err := os.ReadFile(filepath.Join(root, strings.TrimPrefix(val, "-")))
			if err != nil {
				if strings.HasPrefix(val, "-") && errors.Is(err, fs.ErrNotExist) {
					continue
				}
				t.Fatalf("%s: EnvironmentFile: %v", unit, err)
			}
			for _, l := range strings.Split(string(f), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
					vars[k] = v
					svc.env = append(svc.env, l)
				}
			}
		}
	}
	if exec == "" {
		t.Fatalf("%s has no ExecStart=", unit)
	}
	for _, w := range strings.Fields(exec) {
		switch {
		case strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${"):
			svc.argv = append(svc.argv, strings.Fields(vars[w[1:]])...)
		case strings.ContainsAny(w, `$"'\%`):
			t.Fatalf("%s: ExecStart= word %q: the test expands only $NAME words", unit, w)
		default:
			svc.argv = append(svc.argv, w)
		}
	}
	return svc
}

// proc is a unit's ExecStart= running, its output collected.
type proc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	out     strings.Builder
	done    chan error
	stopped bool // stop waited for it
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs svc chrooted in root, in network namespace ns, with root's
// /proc mounted in a mount namespace of its own (ip netns exec makes one).
func start(t *testing.T, root, ns string, svc service) *proc {
	t.Helper()
	args := append([]string{"netns", "exec", ns, "sh", "-c",
		`mount -t proc proc "$0/proc" && exec chroot "$0" "$@"`, root}, svc.argv...)
	p := &proc{cmd: exec.Command("ip", args...), done: make(chan error, 1)}
	p.cmd.Env = svc.env
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %q: %v", svc.argv, err)
	}
	w.Close()
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			p.mu.Lock()
			p.out.WriteString(s.Text() + "\n")
			p.mu.Unlock()
		}
		r.Close()
	}()
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends SIGTERM and waits as long as the units' TimeoutStopSec=.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.stopped = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%q on SIGTERM: %v, want exit 0\n%s", p.cmd.Args, err, p.output())
		}
	case <-time.After(30 * time.Second):
		p.stopped = false // the cleanup kills it
		t.Errorf("%q did not stop within 30 s of SIGTERM (TimeoutStopSec=30s)\n%s", p.cmd.Args, p.output())
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return cond()
}

// runUnits runs both units' ExecStart= command lines as installed, with
// their configuration files, chrooted in root and in a network namespace
// of the test's own (its loopback, and a veth pair for the agent's
// address): the datastore serves, the agent programs its host and answers
// servalctl node status, and both stop on SIGTERM.
func runUnits(t *testing.T, root string) {
	ns := fmt.Sprintf("serval-pkg-%d", os.Getpid())
	output(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "host0", "type", "veth", "peer", "name", "host1"},
		{"addr", "add", "10.99.0.1/24", "dev", "host0"},
		{"link", "set", "host0", "up"},
		{"link", "set", "host1", "up"},
	} {
		output(t, "ip", append([]string{"-n", ns}, args...)...)
	}

	ds := start(t, root, ns, readUnit(t, root, "serval-datastore.service"))
	if !waitFor(30*time.Second, func() bool { return strings.Contains(ds.output(), "datastore ready") }) {
		t.Fatalf("the datastore did not say it was ready within 30 s:\n%s", ds.output())
	}
	if !exists(filepath.Join(root, "var/lib/serval/etcd/member")) {
		t.Errorf("the datastore keeps no data in /var/lib/serval/etcd")
	}

	node := start(t, root, ns, readUnit(t, root, "serval-node.service"))
	socket := filepath.Join(root, "run/serval/node.sock")
	var last string
	programmed := waitFor(60*time.Second, func() bool {
		out, err := exec.Command(filepath.Join(root, "usr/bin/servalctl"), "node", "status", "-o", "json", "--socket", socket).CombinedOutput()
		last = string(out)
		var rep nodestatus.StatusReport
		return err == nil && json.Unmarshal(out, &rep) == nil && rep.Health.Programmed
	})
	t.Logf("servalctl node status -o json:\n%s", last)
	if !programmed {
		t.Errorf("servalctl node status never said the agent had programmed its host within 60 s:\n%s\nagent:\n%s", last, node.output())
	}
	node.stop(t)
	t.Logf("serval-node (%q):\n%s", node.cmd.Args, node.output())
	if !strings.Contains(node.output(), "stopping; the kernel keeps what was programmed") {
		t.Errorf("the agent did not log its stop:\n%s", node.output())
	}
	ds.stop(t)
	t.Logf("serval-datastore (%q):\n%s", ds.cmd.Args, ds.output())
	if !strings.Contains(ds.output(), "datastore stopped") {
		t.Errorf("the datastore did not log its stop:\n%s", ds.output())
	}
}
