package ociimage

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestParseImageList(t *testing.T) {
	header := "REF                                            TYPE                                       DIGEST  SIZE    PLATFORMS   LABELS \n"
	tests := []struct {
		name    string
		out     string
		want    map[string]digest.Digest
		wantErr string
	}{
		{name: "none", out: header, want: map[string]digest.Digest{}},
		{name: "nothing at all", out: "", want: map[string]digest.Digest{}},
		{name: "two", out: header +
			"registry.k8s.io/pause:3.10.2 application/vnd.oci.image.manifest.v1+json " + d1 + " 1.2 MiB linux/amd64 -\n\n" +
			"registry.k8s.io/e2e-test-images/agnhost:2.66.1 application/vnd.oci.image.manifest.v1+json " + d2 + " 52.0 MiB linux/amd64 io.cri-containerd.image=managed\n",
			want: map[string]digest.Digest{"registry.k8s.io/pause:3.10.2": d1, "registry.k8s.io/e2e-test-images/agnhost:2.66.1": d2}},
		{name: "other header", out: "NAME DIGEST\n", wantErr: "unexpected header"},
		{name: "short line", out: header + "x y\n", wantErr: `unexpected line "x y"`},
		{name: "bad digest", out: header + "x/y:1 t sha256:zz 1 B linux/amd64 -\n", wantErr: "image x/y:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseImageList([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// fakeCtr is a ctr that records its arguments in DIR/args and answers
// images ls with a list, and images import with a failure when the file's
// name says so.
func fakeCtr(t *testing.T) (bin, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := `#!/bin/sh
echo "$@" >> ` + argsFile + `
case "$*" in
*"images ls"*) printf 'REF TYPE DIGEST SIZE PLATFORMS LABELS\nregistry.k8s.io/pause:3.10.2 m ` + d1 + ` 1 B linux/amd64 -\n' ;;
*bad.tar*) echo "ctr: failed to import: unexpected EOF" >&2; exit 1 ;;
esac
`
	bin = filepath.Join(dir, "ctr")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, argsFile
}

func TestContainerdCommands(t *testing.T) {
	bin, argsFile := fakeCtr(t)
	c := Containerd{Ctr: bin, Address: "/run/x/containerd.sock", Namespace: "k8s.io"}
	ctx := context.Background()
	if err := c.Import(ctx, "/tmp/good.tar"); err != nil {
		t.Fatal(err)
	}
	err := c.Import(ctx, "/tmp/bad.tar")
	for _, want := range []string{"importing /tmp/bad.tar into containerd at /run/x/containerd.sock (namespace k8s.io)", "exit status 1", "ctr: failed to import: unexpected EOF"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("import error %v, want one with %q", err, want)
		}
	}
	images, err := c.Images(ctx)
	if err != nil || !maps.Equal(images, map[string]digest.Digest{"registry.k8s.io/pause:3.10.2": d1}) {
		t.Errorf("Images = %v, %v", images, err)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := "--address /run/x/containerd.sock --namespace k8s.io images import /tmp/good.tar\n" +
		"--address /run/x/containerd.sock --namespace k8s.io images import /tmp/bad.tar\n" +
		"--address /run/x/containerd.sock --namespace k8s.io images ls\n"
	if string(args) != want {
		t.Errorf("ctr ran with\n%s\nwant\n%s", args, want)
	}

	missing := Containerd{Ctr: filepath.Join(t.TempDir(), "ctr"), Address: "/x", Namespace: "k8s.io"}
	if _, err := missing.Images(ctx); err == nil || !strings.Contains(err.Error(), "listing the images of containerd at /x") {
		t.Errorf("Images with no ctr: %v", err)
	}
}
