package labimage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/servalnet/serval/internal/ociimage"
)

// fakeBinaries writes two small files standing for serval-pause and
// agnhost.
func fakeBinaries(t *testing.T) Binaries {
	t.Helper()
	dir := t.TempDir()
	b := Binaries{Pause: filepath.Join(dir, "serval-pause"), Agnhost: filepath.Join(dir, "agnhost")}
	for _, p := range []string{b.Pause, b.Agnhost} {
		if err := os.WriteFile(p, []byte("binary of "+filepath.Base(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestImages(t *testing.T) {
	bins := fakeBinaries(t)
	dir := t.TempDir()
	archives, err := WriteArchives(dir, bins, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(archives) != 2 || archives[0].Name != PauseName || archives[1].Name != AgnhostName {
		t.Fatalf("archives %+v, want pause then agnhost", archives)
	}
	contents := func(p string) digest.Digest {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return digest.SHA256.FromBytes(b)
	}
	tests := []struct {
		archive              Archive
		entrypoint, cmd, env []string
		user                 string
		files                []ociimage.FileInfo // ModTime, Size ignored
	}{
		{
			archive: archives[0], entrypoint: []string{"/pause"}, user: "65535:65535",
			files: []ociimage.FileInfo{{Path: "/pause", Type: ociimage.RegularFile, Mode: 0o755, Contents: contents(bins.Pause)}},
		},
		{
			archive: archives[1], entrypoint: []string{"/agnhost"}, cmd: []string{"pause"}, env: []string{defaultPath},
			files: []ociimage.FileInfo{
				{Path: "/agnhost", Type: ociimage.RegularFile, Mode: 0o755, Contents: contents(bins.Agnhost)},
				{Path: "/agnhost-2", Type: ociimage.Symlink, Mode: 0o777, Target: "agnhost"},
				{Path: "/etc", Type: ociimage.Directory, Mode: 0o755},
				{Path: "/etc/group", Type: ociimage.RegularFile, Mode: 0o644, Contents: digest.SHA256.FromString(group)},
				{Path: "/etc/passwd", Type: ociimage.RegularFile, Mode: 0o644, Contents: digest.SHA256.FromString(passwd)},
				{Path: "/tmp", Type: ociimage.Directory, Mode: 0o777 | fs.ModeSticky},
				{Path: "/uploads", Type: ociimage.Directory, Mode: 0o755},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.archive.Name, func(t *testing.T) {
			c, err := ociimage.Inspect(tt.archive.Path)
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != tt.archive.Name || c.Index.Manifests[0].Digest != tt.archive.Manifest {
				t.Errorf("archive holds %s at %s, WriteArchives said %s at %s", c.Name, c.Index.Manifests[0].Digest, tt.archive.Name, tt.archive.Manifest)
			}
			cfg := c.Config.Config
			if !slices.Equal(cfg.Entrypoint, tt.entrypoint) || !slices.Equal(cfg.Cmd, tt.cmd) || !slices.Equal(cfg.Env, tt.env) || cfg.User != tt.user {
				t.Errorf("config %+v", cfg)
			}
			if len(c.Files) != len(tt.files) {
				t.Fatalf("files %+v, want %+v", c.Files, tt.files)
			}
			for i, f := range c.Files {
				f.ModTime, f.Size = time.Time{}, 0
				if f != tt.files[i] {
					t.Errorf("file %d = %+v, want %+v", i, f, tt.files[i])
				}
			}
		})
	}
	for _, line := range []string{"root:x:0:0:", "nobody:x:65534:65534:", "user-defined-in-image:x:1000:"} {
		if !strings.Contains(passwd, "\n"+line) && !strings.HasPrefix(passwd, line) {
			t.Errorf("/etc/passwd lacks %q", line)
		}
	}
}

// state is what the directory of archives looks like: each file's inode,
// size and modification time, which a rewrite changes (WriteFile replaces
// the file by a new one).
func state(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[e.Name()] = fmt.Sprintf("inode %d, %d bytes, %v", st.Ino, st.Size, fi.ModTime())
	}
	return m
}

func TestWriteArchivesOnlyWhatChanged(t *testing.T) {
	bins := fakeBinaries(t)
	dir := filepath.Join(t.TempDir(), "images") // made by WriteArchives
	first, err := WriteArchives(dir, bins, nil)
	if err != nil {
		t.Fatal(err)
	}
	manifests := map[string]digest.Digest{}
	for _, a := range first {
		if !a.Built {
			t.Errorf("%s not built the first time", a.Name)
		}
		manifests[a.Name] = a.Manifest
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range state(t, dir) {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"agnhost.tar", "agnhost.tar.stamp", "pause.tar", "pause.tar.stamp"}) {
		t.Fatalf("directory holds %v", got)
	}

	tests := []struct {
		name   string
		change func(t *testing.T)
		built  []string // the images rebuilt
	}{
		{"nothing", func(*testing.T) {}, nil},
		{"binary touched, same contents", func(t *testing.T) {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(bins.Pause, later, later); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"agnhost rebuilt", func(t *testing.T) {
			if err := os.WriteFile(bins.Agnhost, []byte("agnhost, another build"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{AgnhostName}},
		{"archive deleted", func(t *testing.T) {
			if err := os.Remove(filepath.Join(dir, "pause.tar")); err != nil {
				t.Fatal(err)
			}
		}, []string{PauseName}},
		{"archive truncated", func(t *testing.T) {
			if err := os.Truncate(filepath.Join(dir, "agnhost.tar"), 100); err != nil {
				t.Fatal(err)
			}
		}, []string{AgnhostName}},
		{"stamp garbled", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "pause.tar.stamp"), []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{PauseName}},
		{"stamp of other inputs", func(t *testing.T) {
			b, _ := os.ReadFile(filepath.Join(dir, "pause.tar.stamp"))
			b = []byte(strings.Replace(string(b), `"key":"sha256:`, `"key":"sha256:0`, 1)[:len(b)])
			if err := os.WriteFile(filepath.Join(dir, "pause.tar.stamp"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{PauseName}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change(t)
			before := state(t, dir)
			archives, err := WriteArchives(dir, bins, nil)
			if err != nil {
				t.Fatal(err)
			}
			after := state(t, dir)
			var built []string
			for _, a := range archives {
				if a.Built {
					built = append(built, a.Name)
				}
				file := filepath.Base(a.Path)
				if rewritten := before[file] != after[file]; rewritten != a.Built {
					t.Errorf("%s: Built %v, but the file was rewritten: %v", a.Name, a.Built, rewritten)
				}
				c, err := ociimage.Inspect(a.Path)
				if err != nil {
					t.Fatal(err)
				}
				if c.Index.Manifests[0].Digest != a.Manifest {
					t.Errorf("%s: archive at %s, WriteArchives said %s", a.Name, c.Index.Manifests[0].Digest, a.Manifest)
				}
				if changed := manifests[a.Name] != a.Manifest; changed && tt.name != "agnhost rebuilt" {
					t.Errorf("%s: manifest changed to %s with the same inputs", a.Name, a.Manifest)
				}
				manifests[a.Name] = a.Manifest
			}
			if !slices.Equal(built, tt.built) {
				t.Errorf("rebuilt %v, want %v", built, tt.built)
			}
		})
	}
}

func TestWriteArchivesErrors(t *testing.T) {
	bins := fakeBinaries(t)
	missing := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		name    string
		bins    Binaries
		wantErr string
	}{
		{"no pause", Binaries{Pause: missing, Agnhost: bins.Agnhost}, `image registry.k8s.io/pause:3.10.2: entry 0 "/pause": reading ` + missing},
		{"no agnhost", Binaries{Pause: bins.Pause, Agnhost: missing}, `image registry.k8s.io/e2e-test-images/agnhost:2.66.1: entry 0 "/agnhost": reading ` + missing},
		{"agnhost a directory", Binaries{Pause: bins.Pause, Agnhost: t.TempDir()}, `entry 0 "/agnhost": reading`},
		{"no agnhost path", Binaries{Pause: bins.Pause}, `need the serval-pause and agnhost binaries, got "` + bins.Pause + `" and ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := WriteArchives(t.TempDir(), tt.bins, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

// fakeCtr is a ctr over a list of images in a file: images ls prints it,
// images import FILE appends FILE.listing (a line the test wrote), and
// importing a file named fail.tar fails. Every call is logged.
func fakeCtr(t *testing.T) (c ociimage.Containerd, list, calls string) {
	t.Helper()
	dir := t.TempDir()
	list, calls = filepath.Join(dir, "list"), filepath.Join(dir, "calls")
	script := `#!/bin/sh
echo "$@" >> ` + calls + `
shift 4
case "$1 $2" in
"images ls") echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"; cat ` + list + ` 2>/dev/null ;;
"images import")
	case "$3" in *fail.tar) echo "ctr: unexpected EOF" >&2; exit 1 ;; esac
	cat "$3.listing" >> ` + list + ` ;;
esac
`
	bin := filepath.Join(dir, "ctr")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return ociimage.Containerd{Ctr: bin, Address: "/node/containerd.sock", Namespace: "k8s.io"}, list, calls
}

func TestImport(t *testing.T) {
	const (
		dPause   = digest.Digest("sha256:1111111111111111111111111111111111111111111111111111111111111111")
		dAgnhost = digest.Digest("sha256:2222222222222222222222222222222222222222222222222222222222222222")
		dOld     = digest.Digest("sha256:3333333333333333333333333333333333333333333333333333333333333333")
	)
	line := func(name string, d digest.Digest) string {
		return name + " application/vnd.oci.image.manifest.v1+json " + string(d) + " 1.0 MiB linux/amd64 -\n"
	}
	tests := []struct {
		name         string
		present      string // the list before
		pauseFile    string // the pause archive's file name
		pauseListing string // what importing it adds
		want         []string
		wantErr      string
	}{
		{name: "empty", want: []string{PauseName, AgnhostName}},
		{name: "all there", present: line(PauseName, dPause) + line(AgnhostName, dAgnhost)},
		{name: "old pause", present: line(PauseName, dOld) + line(AgnhostName, dAgnhost), want: []string{PauseName}},
		{name: "other images do not matter", present: line("registry.example/x:1", dOld) + line(AgnhostName, dAgnhost), want: []string{PauseName}},
		{name: "import fails", pauseFile: "fail.tar", wantErr: "importing /ARCHIVES/fail.tar into containerd at /node/containerd.sock (namespace k8s.io)"},
		{name: "archive names another image", pauseListing: line("registry.k8s.io/pause:3.9", dPause),
			wantErr: `it holds registry.k8s.io/pause:3.10.2 at "", want ` + string(dPause)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, list, calls := fakeCtr(t)
			dir := t.TempDir()
			if tt.pauseFile == "" {
				tt.pauseFile = "pause.tar"
			}
			if tt.pauseListing == "" {
				tt.pauseListing = line(PauseName, dPause)
			}
			archives := []Archive{
				{Name: PauseName, Path: filepath.Join(dir, tt.pauseFile), Manifest: dPause},
				{Name: AgnhostName, Path: filepath.Join(dir, "agnhost.tar"), Manifest: dAgnhost},
			}
			for _, f := range []struct{ path, listing string }{{archives[0].Path, tt.pauseListing}, {archives[1].Path, line(AgnhostName, dAgnhost)}} {
				if err := os.WriteFile(f.path+".listing", []byte(f.listing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(list, []byte(tt.present), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Import(context.Background(), c, archives, nil)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "/ARCHIVES", dir)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want one with %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("imported %v, want %v", got, tt.want)
			}
			b, _ := os.ReadFile(calls)
			n := strings.Count(string(b), "images import")
			if n != len(tt.want) {
				t.Errorf("ctr import ran %d times, want %d:\n%s", n, len(tt.want), b)
			}
		})
	}
}
