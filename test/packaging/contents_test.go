package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/roottest"
)

// shipped is every file the package holds, with its mode as dpkg-deb
// --contents shows it. Directories are not listed.
var shipped = map[string]string{
	"/usr/bin/serval-node":                         "-rwxr-xr-x",
	"/usr/bin/servalctl":                           "-rwxr-xr-x",
	"/usr/bin/serval-controllers":                  "-rwxr-xr-x",
	"/opt/cni/bin/serval":                          "-rwxr-xr-x",
	"/opt/cni/bin/serval-ipam":                     "-rwxr-xr-x",
	"/lib/systemd/system/serval-node.service":      "-rw-r--r--",
	"/lib/systemd/system/serval-datastore.service": "-rw-r--r--",
	"/etc/serval/serval-node.env":                  "-rw-r-----",
	"/etc/serval/serval-datastore.env":             "-rw-r--r--",
	"/usr/share/man/man8/serval-node.8.gz":         "-rw-r--r--",
	"/usr/share/man/man1/servalctl.1.gz":           "-rw-r--r--",
	"/usr/share/doc/serval/copyright":              "-rw-r--r--",
	"/usr/share/doc/serval/changelog.gz":           "-rw-r--r--",
	"/usr/share/doc/serval/README.md.gz":           "-rw-r--r--",
	"/usr/share/doc/serval/PACKAGING.md":           "-rw-r--r--",
}

var conffiles = []string{"/etc/serval/serval-node.env", "/etc/serval/serval-datastore.env"}

// output runs a command and returns its standard output; it fails t, with
// the standard error, if the command fails.
func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func TestContents(t *testing.T) {
	roottest.NeedProgram(t, "dpkg-deb", "dpkg")
	roottest.NeedProgram(t, "md5sum", "coreutils")

	t.Run("fields", func(t *testing.T) {
		arch := strings.TrimSpace(output(t, "dpkg", "--print-architecture"))
		want := map[string]*regexp.Regexp{
			"Package":      regexp.MustCompile(`^serval$`),
			"Architecture": regexp.MustCompile(`^` + regexp.QuoteMeta(arch) + `$`),
			// Debian's rule: a digit first, then [A-Za-z0-9.+~-].
			"Version": regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`),
			"Section": regexp.MustCompile(`^net$`),
			// No Depends: the binaries are static.
			"Depends": regexp.MustCompile(`^$`),
		}
		for field, re := range want {
			got := strings.TrimSpace(output(t, "dpkg-deb", "--field", deb, field))
			if !re.MatchString(got) {
				t.Errorf("%s: %q, want it to match %s", field, got, re)
			}
		}
		if base, v := filepath.Base(deb), strings.TrimSpace(output(t, "dpkg-deb", "--field", deb, "Version")); base != "serval_"+v+"_"+arch+".deb" {
			t.Errorf("package file %s, want serval_%s_%s.deb", base, v, arch)
		}
	})

	t.Run("files", func(t *testing.T) {
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(output(t, "dpkg-deb", "--contents", deb)), "\n") {
			f := strings.Fields(line)
			if len(f) != 6 {
				t.Fatalf("dpkg-deb --contents line %q: want 6 fields (no links)", line)
			}
			if f[1] != "root/root" {
				t.Errorf("%s is owned by %s, want root/root", f[5], f[1])
			}
			if strings.HasPrefix(f[0], "d") {
				continue
			}
			got[strings.TrimPrefix(f[5], ".")] = f[0]
		}
		for path, mode := range shipped {
			if got[path] != mode {
				t.Errorf("%s: mode %q, want %q", path, got[path], mode)
			}
		}
		for path := range got {
			if _, ok := shipped[path]; !ok {
				t.Errorf("%s is in the package, not in the test's list", path)
			}
		}
	})

	t.Run("conffiles", func(t *testing.T) {
		got := strings.Fields(output(t, "dpkg-deb", "--info", deb, "conffiles"))
		if !slices.Equal(got, conffiles) {
			t.Errorf("conffiles %q, want %q", got, conffiles)
		}
	})

	dir := t.TempDir()
	output(t, "dpkg-deb", "--extract", deb, dir)

	t.Run("md5sums", func(t *testing.T) {
		sums := output(t, "dpkg-deb", "--info", deb, "md5sums")
		var listed []string
		for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
			_, path, ok := strings.Cut(line, "  ")
			if !ok {
				t.Fatalf("md5sums line %q is not SUM  PATH", line)
			}
			listed = append(listed, "/"+path)
		}
		var want []string
		for path := range shipped {
			if !slices.Contains(conffiles, path) {
				want = append(want, path)
			}
		}
		slices.Sort(listed)
		slices.Sort(want)
		if !slices.Equal(listed, want) {
			t.Errorf("md5sums lists %q, want every file but the conffiles: %q", listed, want)
		}
		check := exec.Command("md5sum", "--check", "--quiet", "-")
		check.Dir, check.Stdin = dir, strings.NewReader(sums)
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("md5sum --check of the extracted files: %v\n%s", err, out)
		}
	})

	t.Run("configuration", func(t *testing.T) {
		// Every setting is commented out: the defaults are serval-node's own.
		for _, f := range conffiles {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(b), "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					t.Errorf("%s:%d: %q is a setting; the shipped file only comments", f, i+1, line)
				}
			}
		}
		// ... and it names every variable serval-node reads.
		help, _ := exec.Command(filepath.Join(dir, "usr/bin/serval-node"), "--help").CombinedOutput()
		vars := regexp.MustCompile(`\[\$([A-Z0-9_]+)\]`).FindAllStringSubmatch(string(help), -1)
		if len(vars) < 20 {
			t.Fatalf("serval-node --help names %d variables, want its 20-odd:\n%s", len(vars), help)
		}
		env, err := os.ReadFile(filepath.Join(dir, "etc/serval/serval-node.env"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vars {
			if !regexp.MustCompile(`(?m)^#` + v[1] + `=`).Match(env) {
				t.Errorf("serval-node.env has no #%s= line; serval-node --help lists it", v[1])
			}
		}
	})

	t.Run("man pages", func(t *testing.T) {
		roottest.NeedProgram(t, "man", "man-db")
		for page, want := range map[string][]string{
			"usr/share/man/man8/serval-node.8.gz": {"serval-node - Serval's per-host agent", "-etcd-endpoints", "SERVAL_ETCD_ENDPOINTS"},
			"usr/share/man/man1/servalctl.1.gz":   {"servalctl - manage a Serval network", "datastore serve", "--listen-client"},
		} {
			cmd := exec.Command("man", "--local-file", "--pager=cat", filepath.Join(dir, page))
			cmd.Env = append(os.Environ(), "MANWIDTH=100", "LC_ALL=C.UTF-8")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Errorf("man %s: %v\n%s", page, err, stderr.String())
			}
			for _, w := range want {
				if !strings.Contains(string(out), w) {
					t.Errorf("man %s does not show %q:\n%s", page, w, out)
				}
			}
		}
	})
}

// TestDebianVersion checks how scripts/package.sh turns `git describe`
// into the package's version, and that dpkg orders the results as the
// commits are ordered.
func TestDebianVersion(t *testing.T) {
	roottest.NeedProgram(t, "dpkg", "dpkg")
	script, err := filepath.Abs("../../scripts/package.sh")
	if err != nil {
		t.Fatal(err)
	}
	debian := func(t *testing.T, describe string) string {
		return strings.TrimSpace(output(t, "bash", script, "--debian-version", describe))
	}
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-3-gabc1234", "1.2.0+3.gabc1234"},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0+3.gabc1234+dirty"},
		{"v2.0.0-rc.1", "2.0.0~rc.1"},
		{"v2.0.0-rc.1-4-g0123abc", "2.0.0~rc.1+4.g0123abc"},
		{"abc1234", "0~git.abc1234"},
		{"812a947", "0~git.812a947"}, // a commit that starts with a digit is still a commit
		{"812a947-dirty", "0~git.812a947+dirty"},
		{"dev", "0~dev"},
		{"v1.0_beta", "1.0.beta"},
	} {
		t.Run(tc.describe, func(t *testing.T) {
			if got := debian(t, tc.describe); got != tc.want {
				t.Errorf("--debian-version %s = %q, want %q", tc.describe, got, tc.want)
			}
		})
	}
	// Each version is older than the next.
	order := []string{"abc1234", "v1.2.0", "v1.2.0-3-gabc1234", "v1.2.1", "v2.0.0-rc.1", "v2.0.0-rc.1-4-g0123abc", "v2.0.0"}
	for i := 1; i < len(order); i++ {
		older, newer := debian(t, order[i-1]), debian(t, order[i])
		if err := exec.Command("dpkg", "--compare-versions", older, "lt", newer).Run(); err != nil {
			t.Errorf("dpkg does not order %s (%s) before %s (%s): %v", older, order[i-1], newer, order[i], err)
		}
	}
}
