package labimage

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"

	"github.com/servalnet/serval/internal/ociimage"
)

// PauseName is the sandbox image: the name test/utils/image of
// k8s.io/kubernetes v1.37.2 gives its Pause image (GetPauseImageName), and
// the one the lab's containerd configs name as sandbox_image.
const PauseName = "registry.k8s.io/pause:3.10.2"

// AgnhostName is the e2e suite's test image: the name test/utils/image of
// k8s.io/kubernetes v1.37.2 gives its Agnhost image.
const AgnhostName = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"

// pauseUser is the user of the real pause image (USER 65535:65535 in
// k8s.io/kubernetes build/pause/Dockerfile): the sandbox needs no
// privilege to sleep.
const pauseUser = "65535:65535"

// defaultPath is the PATH of the real agnhost image (Alpine's default).
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Pause is the sandbox image, whose /pause is binary (serval-pause).
func Pause(binary string) ociimage.Image {
	return ociimage.Image{
		Name:    PauseName,
		Entries: []ociimage.Entry{ociimage.File("/pause", binary, 0o755)},
		Config:  ociimage.Config{Entrypoint: []string{"/pause"}, User: pauseUser},
	}
}

// passwd and group are the real agnhost image's own users and groups:
// Alpine's root and nobody, and user-defined-in-image (1000) in
// group-defined-in-image (50000), which an e2e test of SupplementalGroups
// expects to find in the image.
const (
	passwd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/sbin/nologin
user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh
`
	group = `root:x:0:root
nobody:x:65534:
user-defined-in-image:x:1000:
group-defined-in-image:x:50000:user-defined-in-image
`
)

// Agnhost is the e2e test image, whose /agnhost is binary (agnhost, built
// from k8s.io/kubernetes/test/images/agnhost). As the real image, it runs
// "/agnhost pause" unless told otherwise, and has /agnhost-2 (a symlink
// the entrypoint tests run through), /uploads (where netexec's upload
// handler writes) and a /tmp anyone may write.
func Agnhost(binary string) ociimage.Image {
	return ociimage.Image{
		Name: AgnhostName,
		Entries: []ociimage.Entry{
			ociimage.File("/agnhost", binary, 0o755),
			ociimage.Link("/agnhost-2", "agnhost"),
			ociimage.Dir("/uploads", 0o755),
			ociimage.Dir("/tmp", 0o777|fs.ModeSticky),
			ociimage.FileData("/etc/passwd", []byte(passwd), 0o644),
			ociimage.FileData("/etc/group", []byte(group), 0o644),
		},
		Config: ociimage.Config{
			Entrypoint: []string{"/agnhost"},
			Cmd:        []string{"pause"},
			Env:        []string{defaultPath},
		},
	}
}

// Binaries are the programs the lab's images are made of.
type Binaries struct {
	Pause   string // serval-pause
	Agnhost string // agnhost
}

// Archive is one image archive WriteArchives keeps.
type Archive struct {
	Name string // the image's full reference
	Path string
	// Manifest is the digest of the image's manifest: what a containerd
	// that has imported this archive lists for Name.
	Manifest digest.Digest
	// Built says whether WriteArchives wrote it this time, rather than
	// finding it current.
	Built bool
}

// stamp is what WriteArchives keeps beside an archive (ARCHIVE.stamp) to
// know, without reading it, whether it is current.
type stamp struct {
	Key      digest.Digest `json:"key"` // ociimage.Key of the image
	Name     string        `json:"name"`
	Manifest digest.Digest `json:"manifest"`
	Size     int64         `json:"size"` // of the archive
}

// WriteArchives keeps dir/pause.tar and dir/agnhost.tar the archives of
// Pause(bins.Pause) and Agnhost(bins.Agnhost), writing one only when its
// inputs (binaries included, by contents) changed since it was written,
// or it is missing. It creates dir if need be. It costs a read of the
// binaries when nothing changed.
func WriteArchives(dir string, bins Binaries, log *slog.Logger) ([]Archive, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if bins.Pause == "" || bins.Agnhost == "" {
		return nil, fmt.Errorf("lab images: need the serval-pause and agnhost binaries, got %q and %q", bins.Pause, bins.Agnhost)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab images: %w", err)
	}
	images := []struct {
		file string
		img  ociimage.Image
	}{
		{"pause.tar", Pause(bins.Pause)},
		{"agnhost.tar", Agnhost(bins.Agnhost)},
	}
	var out []Archive
	for _, im := range images {
		a, err := writeArchive(filepath.Join(dir, im.file), im.img, log)
		if err != nil {
			return nil, fmt.Errorf("lab images: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// writeArchive writes img to path unless path's stamp says it holds img
// already.
func writeArchive(path string, img ociimage.Image, log *slog.Logger) (Archive, error) {
	key, err := ociimage.Key(img)
	if err != nil {
		return Archive{}, err
	}
	stampPath := path + ".stamp"
	if s, ok := readStamp(stampPath); ok && s.Key == key && s.Name == img.Name {
		if fi, err := os.Stat(path); err == nil && fi.Size() == s.Size {
			log.Debug("image archive is current", "image", img.Name, "archive", path, "manifest", s.Manifest)
			return Archive{Name: img.Name, Path: path, Manifest: s.Manifest}, nil
		}
	}
	w, err := ociimage.WriteFile(path, img)
	if err != nil {
		return Archive{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Archive{}, fmt.Errorf("image archive %s: %w", path, err)
	}
	if err := writeStamp(stampPath, stamp{Key: key, Name: w.Name, Manifest: w.Manifest.Digest, Size: fi.Size()}); err != nil {
		return Archive{}, err
	}
	log.Info("built image archive", "image", img.Name, "archive", path, "manifest", w.Manifest.Digest, "bytes", fi.Size())
	return Archive{Name: w.Name, Path: path, Manifest: w.Manifest.Digest, Built: true}, nil
}

// readStamp reads a stamp; a missing or unreadable one only means the
// archive is rebuilt.
func readStamp(path string) (stamp, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return stamp{}, false
	}
	var s stamp
	if err := json.Unmarshal(b, &s); err != nil {
		return stamp{}, false
	}
	return s, true
}

// writeStamp writes a stamp whole or not at all, after its archive: a
// stamp never vouches for an archive that is not there yet.
func writeStamp(path string, s stamp) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("stamp %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("stamp %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("stamp %s: %w", path, err)
	}
	return nil
}

// Import imports into c each archive whose image c does not hold under
// its name at its manifest (missing, or an older build), and returns the
// names it imported.
func Import(ctx context.Context, c ociimage.Containerd, archives []Archive, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	have, err := c.Images(ctx)
	if err != nil {
		return nil, err
	}
	var imported []string
	for _, a := range archives {
		if a.Manifest == "" {
			return imported, fmt.Errorf("importing %s: archive %s has no manifest digest (not one WriteArchives returned)", a.Name, a.Path)
		}
		if have[a.Name] == a.Manifest {
			continue
		}
		if err := c.Import(ctx, a.Path); err != nil {
			return imported, err
		}
		log.Info("imported image", "image", a.Name, "containerd", c.Address, "namespace", c.Namespace, "manifest", a.Manifest, "replaced", have[a.Name])
		imported = append(imported, a.Name)
	}
	// What ctr imported is what the archive's index.json named: check it
	// is the image the caller meant, so that a wrong archive fails here
	// and not when a pod will not start.
	if len(imported) > 0 {
		if have, err = c.Images(ctx); err != nil {
			return imported, err
		}
		for _, a := range archives {
			if have[a.Name] != a.Manifest {
				return imported, fmt.Errorf("after importing %s into containerd at %s (namespace %s): it holds %s at %q, want %s",
					a.Path, c.Address, c.Namespace, a.Name, have[a.Name], a.Manifest)
			}
		}
	}
	return imported, nil
}
