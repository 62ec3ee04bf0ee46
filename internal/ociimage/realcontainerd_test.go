package ociimage_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/containerdtest"
	"github.com/servalnet/serval/internal/ociimage"
)

// An archive imports into Debian's containerd under its name, with the
// manifest digest Write reported, and runs with runc: the files, modes,
// symlink and config are what the container sees.
func TestRealContainerd(t *testing.T) {
	d := containerdtest.Start(t)
	probe := containerdtest.StaticBinary(t, containerdtest.ProbePackage)
	img := ociimage.Image{
		Name: "registry.example/serval-test/probe:1",
		Entries: []ociimage.Entry{
			ociimage.File("/probe", probe, 0o755),
			ociimage.Link("/bin/probe-link", "../probe"),
			ociimage.Dir("/tmp", 0o777|fs.ModeSticky),
			ociimage.FileData("/data/hello.txt", []byte("hello\n"), 0o640),
		},
		Config: ociimage.Config{
			Entrypoint: []string{"/probe"},
			Cmd:        []string{"/tmp", "/bin/probe-link", "/data/hello.txt"},
			WorkingDir: "/data",
			User:       "1000:2000",
		},
	}
	archive := filepath.Join(t.TempDir(), "probe.tar")
	w, err := ociimage.WriteFile(archive, img)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := d.Client("k8s.io")
	// Twice: importing what is there already is no error, and changes
	// nothing.
	for i := 0; i < 2; i++ {
		if err := c.Import(ctx, archive); err != nil {
			t.Fatal(err)
		}
		images, err := c.Images(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := images[img.Name]; !ok || got != w.Manifest.Digest || len(images) != 1 {
			t.Fatalf("images after import %d: %v; want only %s at %s", i+1, images, img.Name, w.Manifest.Digest)
		}
	}
	if ls := d.MustCtr(t, "k8s.io", "images", "ls"); !strings.Contains(ls, img.Name) {
		t.Errorf("ctr images ls does not show %s:\n%s", img.Name, ls)
	}

	out := d.MustRun(t, "k8s.io", "--rm", img.Name, "probe-1")
	want := `probe uid=1000 gid=2000 args=["/tmp" "/bin/probe-link" "/data/hello.txt"]
/tmp dtrwxrwxrwx
/bin/probe-link Lrwxrwxrwx -> ../probe
/data/hello.txt -rw-r-----
`
	if out != want {
		t.Errorf("ctr run printed\n%s\nwant\n%s", out, want)
	}
	// A second image: the same program under another name and cmd, whose
	// exit status ctr run passes on.
	other := img
	other.Name = "registry.example/serval-test/probe:2"
	other.Config.Cmd = []string{"exit", "7"}
	archive2 := filepath.Join(t.TempDir(), "probe2.tar")
	if _, err := ociimage.WriteFile(archive2, other); err != nil {
		t.Fatal(err)
	}
	if err := c.Import(ctx, archive2); err != nil {
		t.Fatal(err)
	}
	out, err = d.Run(ctx, "k8s.io", "--rm", other.Name, "probe-2")
	if err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("ctr run of an image whose cmd is exit 7: %v\n%s", err, out)
	}
}
