package containerdtest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/ociimage"
)

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:          `/plain`,
		`/a\040b`:         `/a b`,
		`/tab\011x\134y`:  "/tab\tx\\y",
		`/trailing\04`:    `/trailing\04`,
		`/not\x`:          `/not\x`,
		`/two\040\040end`: `/two  end`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// pauseImage writes and imports an image whose process runs until told
// to stop.
func pauseImage(t *testing.T, d *Daemon) string {
	t.Helper()
	bin := StaticBinary(t, "./cmd/serval-pause")
	img := ociimage.Image{
		Name:    "registry.example/serval-test/pause:1",
		Entries: []ociimage.Entry{ociimage.File("/pause", bin, 0o755)},
		Config:  ociimage.Config{Entrypoint: []string{"/pause"}},
	}
	archive := filepath.Join(t.TempDir(), "pause.tar")
	if _, err := ociimage.WriteFile(archive, img); err != nil {
		t.Fatal(err)
	}
	if err := d.Client("k8s.io").Import(context.Background(), archive); err != nil {
		t.Fatal(err)
	}
	return img.Name
}

// checkGone fails t if anything of d is left: a process, a mount, its
// directory.
func checkGone(t *testing.T, d *Daemon) {
	t.Helper()
	if pids := d.leftovers(); len(pids) != 0 {
		t.Errorf("processes of the containerd left: %v", pids)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if ms := mountsUnder(d.Dir); len(ms) != 0 {
		t.Errorf("mounts left: %v", ms)
	}
	if _, err := os.Stat(d.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left: %v", d.Dir, err)
	}
}

// A test that ends with a container running leaves nothing behind, nor
// does one whose containerd died under it.
func TestCleanup(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "orderly"
		if crash {
			name = "containerd killed"
		}
		t.Run(name, func(t *testing.T) {
			var d *Daemon
			var started bool
			var sockets []string // the shim's
			t.Run("run", func(t *testing.T) {
				d = Start(t)
				image := pauseImage(t, d)
				d.MustRun(t, "k8s.io", "-d", image, "left-running")
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(d.MustCtr(t, "k8s.io", "tasks", "ls"), "RUNNING") {
					if time.Now().After(deadline) {
						t.Fatal("the container never ran")
					}
					time.Sleep(50 * time.Millisecond)
				}
				pids := d.leftovers()
				for _, pid := range pids {
					sockets = append(sockets, listeningSockets(pid)...)
				}
				started = len(pids) == 2 && len(sockets) == 1 && len(mountsUnder(d.Dir)) == 1
				if crash {
					d.cmd.Process.Kill()
				}
			})
			if d == nil {
				t.Fatal("no containerd started")
			}
			if !started {
				t.Errorf("the container's shim and process, the shim's socket and the rootfs mount were not all found while it ran (socket %v): the check below proves nothing", sockets)
			}
			checkGone(t, d)
			for _, s := range sockets {
				if _, err := os.Stat(s); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the shim's socket %s is left: %v", s, err)
				}
			}
		})
	}
}
