package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// sample is an image with every kind of entry: files from disk and from
// memory, a sticky directory, a symlink, and a file whose parent no entry
// names.
func sample(t *testing.T) (Image, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(src, []byte("#!/bin/true\nnot really a program\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Image{
		Name: "registry.example/team/prog:1.2.3",
		Entries: []Entry{
			File("/prog", src, 0o755),
			Link("/prog-2", "prog"),
			Dir("/tmp", 0o777|fs.ModeSticky),
			FileData("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0),
			Dir("/uploads", 0),
			FileData("/var/lib/empty", nil, 0o600),
		},
		Config: Config{
			Entrypoint: []string{"/prog"},
			Cmd:        []string{"pause"},
			Env:        []string{"PATH=/bin"},
			WorkingDir: "/tmp",
			User:       "65534:65534",
		},
	}, src
}

// rawArchive is an archive's tar entries by name, read without Inspect so
// that the tests of the writer do not trust the reader.
func rawArchive(t *testing.T, path string) (names []string, files map[string][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files = map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d; want the epoch and root", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		files[h.Name] = b
	}
}

func blobOf(t *testing.T, files map[string][]byte, d v1.Descriptor) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+d.Digest.Encoded()]
	if !ok {
		t.Fatalf("no blob for %s", d.Digest)
	}
	if int64(len(b)) != d.Size {
		t.Errorf("blob %s: %d bytes, descriptor says %d", d.Digest, len(b), d.Size)
	}
	return b
}

func TestWriteFileLayout(t *testing.T) {
	img, _ := sample(t)
	path := filepath.Join(t.TempDir(), "prog.tar")
	w, err := WriteFile(path, img)
	if err != nil {
		t.Fatal(err)
	}
	names, files := rawArchive(t, path)

	// Every blob is named by its contents' digest.
	for name, b := range files {
		if enc, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && enc != "" {
			if got := digest.SHA256.FromBytes(b).Encoded(); got != enc {
				t.Errorf("blob %s has digest %s", name, got)
			}
		}
	}
	if want := []string{"oci-layout", "blobs/", "blobs/sha256/"}; !slices.Equal(names[:3], want) || names[len(names)-1] != "index.json" || len(names) != 7 {
		t.Errorf("archive entries %v, want %v, three blobs, index.json", names, want)
	}
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}

	var index v1.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if index.SchemaVersion != 2 || index.MediaType != v1.MediaTypeImageIndex || len(index.Manifests) != 1 {
		t.Fatalf("index.json = %s", files["index.json"])
	}
	md := index.Manifests[0]
	if md.Digest != w.Manifest.Digest || md.MediaType != v1.MediaTypeImageManifest {
		t.Errorf("index lists %s %s, Write said %s", md.MediaType, md.Digest, w.Manifest.Digest)
	}
	if got := md.Annotations[AnnotationImageName]; got != img.Name || w.Name != img.Name {
		t.Errorf("%s = %q (Written.Name %q), want %q", AnnotationImageName, got, w.Name, img.Name)
	}
	if got := md.Annotations[v1.AnnotationRefName]; got != "1.2.3" {
		t.Errorf("%s = %q, want the tag 1.2.3", v1.AnnotationRefName, got)
	}
	if md.Platform == nil || md.Platform.OS != runtime.GOOS || md.Platform.Architecture != runtime.GOARCH {
		t.Errorf("index platform %+v", md.Platform)
	}

	var m v1.Manifest
	if err := json.Unmarshal(blobOf(t, files, md), &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != v1.MediaTypeImageManifest || m.Config.MediaType != v1.MediaTypeImageConfig ||
		m.Config.Digest != w.Config.Digest || len(m.Layers) != 1 || m.Layers[0].Digest != w.Layer.Digest ||
		m.Layers[0].MediaType != v1.MediaTypeImageLayerGzip {
		t.Errorf("manifest %+v, written %+v", m, w)
	}
	var cfg v1.Image
	if err := json.Unmarshal(blobOf(t, files, m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != runtime.GOOS || cfg.Architecture != runtime.GOARCH || cfg.RootFS.Type != "layers" ||
		!slices.Equal(cfg.RootFS.DiffIDs, []digest.Digest{w.DiffID}) {
		t.Errorf("config platform/rootfs %+v %+v", cfg.Platform, cfg.RootFS)
	}
	c := cfg.Config
	if !slices.Equal(c.Entrypoint, img.Config.Entrypoint) || !slices.Equal(c.Cmd, img.Config.Cmd) || !slices.Equal(c.Env, img.Config.Env) ||
		c.WorkingDir != img.Config.WorkingDir || c.User != img.Config.User {
		t.Errorf("config %+v, want %+v", c, img.Config)
	}

	// The layer: a gzip stream with no name and no time in its header,
	// whose uncompressed digest is the diff ID.
	layer := blobOf(t, files, m.Layers[0])
	if len(layer) < 10 || layer[3] != 0 || !bytes.Equal(layer[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header % x: want no flags (no name) and mtime 0", layer[:10])
	}
	gz, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.SHA256.FromBytes(tarBytes); got != w.DiffID {
		t.Errorf("layer's uncompressed digest %s, diff ID %s", got, w.DiffID)
	}
}

func TestInspectSample(t *testing.T) {
	img, src := sample(t)
	path := filepath.Join(t.TempDir(), "prog.tar")
	w, err := WriteFile(path, img)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != img.Name || c.Tag != "1.2.3" || c.Index.Manifests[0].Digest != w.Manifest.Digest {
		t.Errorf("Inspect: name %q tag %q manifest %s", c.Name, c.Tag, c.Index.Manifests[0].Digest)
	}
	prog, _ := os.ReadFile(src)
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	want := []FileInfo{
		{Path: "/etc", Type: Directory, Mode: 0o755},
		{Path: "/etc/passwd", Type: RegularFile, Mode: 0o644, Size: int64(len(passwd)), Contents: digest.SHA256.FromBytes(passwd)},
		{Path: "/prog", Type: RegularFile, Mode: 0o755, Size: int64(len(prog)), Contents: digest.SHA256.FromBytes(prog)},
		{Path: "/prog-2", Type: Symlink, Mode: 0o777, Target: "prog"},
		{Path: "/tmp", Type: Directory, Mode: 0o777 | fs.ModeSticky},
		{Path: "/uploads", Type: Directory, Mode: 0o755},
		{Path: "/var", Type: Directory, Mode: 0o755},
		{Path: "/var/lib", Type: Directory, Mode: 0o755},
		{Path: "/var/lib/empty", Type: RegularFile, Mode: 0o600, Contents: digest.SHA256.FromBytes(nil)},
	}
	for i := range want {
		want[i].ModTime = epoch
	}
	if len(c.Files) != len(want) {
		t.Fatalf("layer has %d entries, want %d: %+v", len(c.Files), len(want), c.Files)
	}
	for i := range want {
		got := c.Files[i]
		got.ModTime = got.ModTime.UTC()
		want[i].ModTime = want[i].ModTime.UTC()
		if got != want[i] {
			t.Errorf("layer entry %d = %+v, want %+v", i, got, want[i])
		}
	}
}

func TestDeterministic(t *testing.T) {
	img, src := sample(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	wa, err := WriteFile(a, img)
	if err != nil {
		t.Fatal(err)
	}
	// The source's own mode and time must not matter, nor the order of
	// the entries.
	if err := os.Chmod(src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, epoch, epoch); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(img.Entries)
	var buf bytes.Buffer
	wb, err := Write(&buf, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ba, _ := os.ReadFile(a)
	if !bytes.Equal(ba, buf.Bytes()) || wa.Manifest.Digest != wb.Manifest.Digest {
		t.Errorf("two writes of one image differ: manifests %s and %s", wa.Manifest.Digest, wb.Manifest.Digest)
	}

	k1, err := Key(img)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(img.Entries)
	if k2, err := Key(img); err != nil || k2 != k1 {
		t.Errorf("Key of the same image: %s then %s, %v", k1, k2, err)
	}

	// Any change to what the image is made of changes the key.
	changes := map[string]func(i *Image, src string){
		"file contents": func(i *Image, src string) {
			if err := os.WriteFile(src, []byte("other"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"mode":   func(i *Image, _ string) { i.Entries[2].Mode = 0o755 },
		"target": func(i *Image, _ string) { i.Entries[1].Target = "./prog" },
		"data":   func(i *Image, _ string) { i.Entries[3].Data = []byte("x") },
		"cmd":    func(i *Image, _ string) { i.Config.Cmd = []string{"netexec"} },
		"name":   func(i *Image, _ string) { i.Name = "registry.example/team/prog:1.2.4" },
		"added":  func(i *Image, _ string) { i.Entries = append(i.Entries, Dir("/x", 0)) },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			img, src := sample(t)
			before, err := Key(img)
			if err != nil {
				t.Fatal(err)
			}
			change(&img, src)
			after, err := Key(img)
			if err != nil {
				t.Fatal(err)
			}
			if before == after {
				t.Errorf("Key unchanged: %s", after)
			}
		})
	}
}

func TestBadImages(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := "registry.example/prog:1"
	tests := []struct {
		name    string
		img     Image
		wantErr string
	}{
		{"no domain", Image{Name: "prog:1"}, "no registry domain"},
		{"no tag", Image{Name: "registry.example/prog"}, "no tag"},
		{"digest", Image{Name: "registry.example/prog@sha256:" + strings.Repeat("0", 64)}, "has a digest"},
		{"upper-case path", Image{Name: "registry.example/Prog:1"}, `invalid path component "Prog"`},
		{"relative path", Image{Name: ok, Entries: []Entry{FileData("etc/passwd", nil, 0)}}, `entry 0 "etc/passwd": path must be absolute`},
		{"unclean path", Image{Name: ok, Entries: []Entry{Dir("/tmp/", 0)}}, `entry 0 "/tmp/": path must be clean`},
		{"dot-dot path", Image{Name: ok, Entries: []Entry{Dir("/a/../b", 0)}}, `entry 0 "/a/../b": path must be clean`},
		{"root", Image{Name: ok, Entries: []Entry{Dir("/", 0)}}, `entry 0 "/": the image's root`},
		{"duplicate", Image{Name: ok, Entries: []Entry{Dir("/a", 0), Dir("/b", 0), FileData("/a", nil, 0)}}, `entry 2 "/a": the same path as entry 0 "/a"`},
		{"parent is a file", Image{Name: ok, Entries: []Entry{FileData("/a/b", nil, 0), FileData("/a", nil, 0)}}, `entry 0 "/a/b": its parent "/a" is a file (entry 1 "/a")`},
		{"parent is a symlink", Image{Name: ok, Entries: []Entry{Link("/a", "b"), Dir("/a/c", 0)}}, `entry 1 "/a/c": its parent "/a" is a symlink`},
		{"missing source", Image{Name: ok, Entries: []Entry{File("/x", filepath.Join(dir, "nope"), 0)}}, `entry 0 "/x": reading ` + filepath.Join(dir, "nope")},
		{"source is a directory", Image{Name: ok, Entries: []Entry{File("/x", dir, 0)}}, `entry 0 "/x": reading ` + dir + ": not a regular file"},
		{"no source", Image{Name: ok, Entries: []Entry{File("/x", "", 0o755)}}, `entry 0 "/x": a file needs a source or data`},
		{"source and data", Image{Name: ok, Entries: []Entry{{Path: "/x", Type: RegularFile, Source: src, Data: []byte("x")}}}, `entry 0 "/x": a file has either a source or data`},
		{"empty target", Image{Name: ok, Entries: []Entry{Link("/x", "")}}, `entry 0 "/x": a symlink needs a target`},
		{"target above the root", Image{Name: ok, Entries: []Entry{Link("/a/x", "../../etc")}}, `entry 0 "/a/x": relative target "../../etc" climbs above the image's root`},
		{"target above the root from /", Image{Name: ok, Entries: []Entry{Link("/x", "../x")}}, `climbs above`},
		{"symlink mode", Image{Name: ok, Entries: []Entry{{Path: "/x", Type: Symlink, Target: "y", Mode: 0o755}}}, `entry 0 "/x": a symlink has no mode`},
		{"directory with data", Image{Name: ok, Entries: []Entry{{Path: "/x", Type: Directory, Data: []byte("x")}}}, `entry 0 "/x": a directory has no source`},
		{"device mode", Image{Name: ok, Entries: []Entry{FileData("/x", nil, fs.ModeDevice|0o644)}}, `entry 0 "/x": mode`},
		{"no type", Image{Name: ok, Entries: []Entry{{Path: "/x"}}}, `entry 0 "/x": unknown entry type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.tar")
			_, err := WriteFile(out, tt.img)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("WriteFile error %v, want one with %q", err, tt.wantErr)
			}
			if _, serr := os.Stat(out); !errors.Is(serr, fs.ErrNotExist) {
				t.Errorf("a failed WriteFile left %s (%v)", out, serr)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
				t.Errorf("a failed WriteFile left temporary files %v", left)
			}
			if _, err := Key(tt.img); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Key error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

// A failed write leaves the archive that was there before.
func TestWriteFileKeepsOldOnFailure(t *testing.T) {
	img, _ := sample(t)
	path := filepath.Join(t.TempDir(), "prog.tar")
	if _, err := WriteFile(path, img); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	img.Entries = append(img.Entries, File("/missing", filepath.Join(t.TempDir(), "missing"), 0))
	if _, err := WriteFile(path, img); err == nil {
		t.Fatal("WriteFile with a missing source succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a failed WriteFile changed the archive")
	}
}

func TestParseReference(t *testing.T) {
	tests := []struct {
		in      string
		want    Reference
		wantErr string
	}{
		{in: "registry.k8s.io/pause:3.10.2", want: Reference{"registry.k8s.io", "pause", "3.10.2"}},
		{in: "registry.k8s.io/e2e-test-images/agnhost:2.66.1", want: Reference{"registry.k8s.io", "e2e-test-images/agnhost", "2.66.1"}},
		{in: "localhost:5000/a__b/c-d.e:latest", want: Reference{"localhost:5000", "a__b/c-d.e", "latest"}},
		{in: "localhost/x:y", want: Reference{"localhost", "x", "y"}},
		{in: "pause:3.10", wantErr: "no registry domain"},
		{in: "library/pause:3.10", wantErr: `"library" is not a host name`},
		{in: "registry.k8s.io/pause", wantErr: "no tag"},
		{in: "registry.k8s.io/:1", wantErr: "no repository path"},
		{in: "registry.k8s.io/pause:", wantErr: `invalid tag ""`},
		{in: "registry.k8s.io/pause:.x", wantErr: `invalid tag ".x"`},
		{in: "registry.k8s.io/pause:" + strings.Repeat("x", 129), wantErr: "invalid tag"},
		{in: "registry.k8s.io/pa..use:1", wantErr: `invalid path component "pa..use"`},
		{in: "registry.k8s.io/a//b:1", wantErr: `invalid path component ""`},
		{in: "-bad.io/x:1", wantErr: `invalid registry domain "-bad.io"`},
		{in: "reg.io:port/x:1", wantErr: `invalid registry domain`},
		{in: "reg.io/" + strings.Repeat("a", 250) + ":1", wantErr: "more than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseReference(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseReference(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.in {
				t.Fatalf("ParseReference(%q) = %+v (%s), %v; want %+v", tt.in, got, got, err, tt.want)
			}
		})
	}
}

// rewrite copies the archive at path, letting edit change each entry's
// header and contents (nil contents drops the entry), and returns the
// copy's path.
func rewrite(t *testing.T, path string, edit func(h *tar.Header, b []byte) []byte) string {
	t.Helper()
	names, files := rawArchive(t, path)
	out := filepath.Join(t.TempDir(), "edited.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, n := range names {
		h := &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}
		if strings.HasSuffix(n, "/") {
			h.Typeflag = tar.TypeDir
		}
		b := edit(h, files[n])
		if b == nil && h.Typeflag == tar.TypeReg {
			continue
		}
		h.Size = int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInspectRefuses(t *testing.T) {
	img, _ := sample(t)
	path := filepath.Join(t.TempDir(), "prog.tar")
	w, err := WriteFile(path, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(rewrite(t, path, func(_ *tar.Header, b []byte) []byte { return b })); err != nil {
		t.Fatalf("an unchanged copy: %v", err)
	}
	layerName := blobPath(w.Layer.Digest)
	configName := blobPath(w.Config.Digest)
	tests := []struct {
		name    string
		edit    func(h *tar.Header, b []byte) []byte
		wantErr string
	}{
		{"blob changed", func(h *tar.Header, b []byte) []byte {
			if h.Name == configName {
				return bytes.Replace(b, []byte("pause"), []byte("pawse"), 1)
			}
			return b
		}, "its contents have another digest"},
		{"layer missing", func(h *tar.Header, b []byte) []byte {
			if h.Name == layerName {
				return nil
			}
			return b
		}, "layer: blob " + string(w.Layer.Digest) + " is not in the archive"},
		{"no index", func(h *tar.Header, b []byte) []byte {
			if h.Name == "index.json" {
				return nil
			}
			return b
		}, "no index.json"},
		{"no oci-layout", func(h *tar.Header, b []byte) []byte {
			if h.Name == "oci-layout" {
				return nil
			}
			return b
		}, "no oci-layout"},
		{"tag annotation differs", func(h *tar.Header, b []byte) []byte {
			if h.Name == "index.json" {
				return bytes.Replace(b, []byte(`"org.opencontainers.image.ref.name":"1.2.3"`), []byte(`"org.opencontainers.image.ref.name":"9"`), 1)
			}
			return b
		}, `is "9", but the name's tag is "1.2.3"`},
		{"size differs", func(h *tar.Header, b []byte) []byte {
			if h.Name == "index.json" {
				return bytes.Replace(b, []byte(`"size":`), []byte(`"size":1`), 1)
			}
			return b
		}, "bytes, its descriptor says"},
		{"stray entry", func(h *tar.Header, b []byte) []byte {
			if h.Name == "oci-layout" {
				h.Name = "manifest.json"
			}
			return b
		}, `unexpected entry "manifest.json"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(rewrite(t, path, tt.edit))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Inspect error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}
