package ociimage

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationImageName is the index.json annotation containerd's importer
// names an image by (containerd's images.AnnotationImageName).
const AnnotationImageName = "io.containerd.image.name"

// epoch is the time of every entry of an archive, inside the layer and
// out: any real time would make two builds of the same files differ.
var epoch = time.Unix(0, 0)

// gzipLevel trades size for time: the archives go from one disk to
// another on the same machine, and agnhost's layer is tens of megabytes,
// which the best compression takes several seconds of a shared CPU over.
const gzipLevel = gzip.BestSpeed

// Written says what an archive holds.
type Written struct {
	// Name is the image's full reference.
	Name string
	// Manifest is the manifest's descriptor as index.json lists it: the
	// target of the image containerd creates, whose digest ctr images ls
	// shows.
	Manifest v1.Descriptor
	Config   v1.Descriptor
	Layer    v1.Descriptor
	// DiffID is the digest of the uncompressed layer, as the config's
	// rootfs lists it.
	DiffID digest.Digest
}

// WriteFile writes the archive of img to the file at path, replacing it
// only once the new one is complete: a reader never sees half an archive,
// and a failed write leaves the old one in place. The layer is staged in
// a temporary file in path's directory.
func WriteFile(path string, img Image) (Written, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return Written{}, fmt.Errorf("writing image %s to %s: %w", img.Name, path, err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	w, err := write(f, img, dir)
	if err == nil {
		err = f.Sync()
	}
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
		return Written{}, fmt.Errorf("writing image %s to %s: %w", img.Name, path, err)
	}
	return w, nil
}

// Write writes the archive of img to w. The layer is staged in a
// temporary file (os.TempDir), since the archive's tar header for it needs
// its size before its bytes.
func Write(w io.Writer, img Image) (Written, error) {
	out, err := write(w, img, "")
	if err != nil {
		return Written{}, fmt.Errorf("writing image %s: %w", img.Name, err)
	}
	return out, nil
}

func write(w io.Writer, img Image, tmpDir string) (Written, error) {
	ref, nodes, err := plan(img)
	if err != nil {
		return Written{}, err
	}
	layerFile, err := os.CreateTemp(tmpDir, ".ociimage-layer-*")
	if err != nil {
		return Written{}, fmt.Errorf("staging the layer: %w", err)
	}
	defer func() {
		layerFile.Close()
		os.Remove(layerFile.Name())
	}()
	layerDigester := digest.SHA256.Digester()
	counter := &countWriter{}
	diffID, err := writeLayer(io.MultiWriter(layerFile, layerDigester.Hash(), counter), nodes)
	if err != nil {
		return Written{}, err
	}
	if _, err := layerFile.Seek(0, io.SeekStart); err != nil {
		return Written{}, fmt.Errorf("staging the layer: %w", err)
	}
	out := Written{
		Name:   ref.String(),
		Layer:  v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: layerDigester.Digest(), Size: counter.n},
		DiffID: diffID,
	}
	platform := v1.Platform{Architecture: runtime.GOARCH, OS: runtime.GOOS}
	config, err := json.Marshal(v1.Image{
		Platform: platform,
		Config: v1.ImageConfig{
			Entrypoint: img.Config.Entrypoint,
			Cmd:        img.Config.Cmd,
			Env:        img.Config.Env,
			WorkingDir: img.Config.WorkingDir,
			User:       img.Config.User,
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	if err != nil {
		return Written{}, fmt.Errorf("encoding the config: %w", err)
	}
	out.Config = descriptor(v1.MediaTypeImageConfig, config)
	manifest, err := json.Marshal(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    out.Config,
		Layers:    []v1.Descriptor{out.Layer},
	})
	if err != nil {
		return Written{}, fmt.Errorf("encoding the manifest: %w", err)
	}
	out.Manifest = descriptor(v1.MediaTypeImageManifest, manifest)
	out.Manifest.Platform = &platform
	out.Manifest.Annotations = map[string]string{
		AnnotationImageName:  out.Name,
		v1.AnnotationRefName: ref.Tag,
	}
	index, err := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{out.Manifest},
	})
	if err != nil {
		return Written{}, fmt.Errorf("encoding index.json: %w", err)
	}
	layout, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return Written{}, fmt.Errorf("encoding oci-layout: %w", err)
	}

	tw := tar.NewWriter(w)
	// The blobs first and index.json last, in this fixed order: a reader
	// that streams the archive has everything index.json names by the time
	// it reads it.
	if err := tarFile(tw, v1.ImageLayoutFile, layout); err != nil {
		return Written{}, err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return Written{}, fmt.Errorf("writing %s: %w", d, err)
		}
	}
	if err := tarFile(tw, blobPath(out.Config.Digest), config); err != nil {
		return Written{}, err
	}
	if err := tw.WriteHeader(blobHeader(out.Layer)); err != nil {
		return Written{}, fmt.Errorf("writing the layer: %w", err)
	}
	if n, err := io.Copy(tw, layerFile); err != nil || n != out.Layer.Size {
		return Written{}, fmt.Errorf("writing the layer (%d of %d bytes): %w", n, out.Layer.Size, err)
	}
	if err := tarFile(tw, blobPath(out.Manifest.Digest), manifest); err != nil {
		return Written{}, err
	}
	if err := tarFile(tw, v1.ImageIndexFile, index); err != nil {
		return Written{}, err
	}
	if err := tw.Close(); err != nil {
		return Written{}, fmt.Errorf("finishing the archive: %w", err)
	}
	return out, nil
}

// writeLayer writes the gzip-compressed tar of nodes to w and returns the
// digest of the uncompressed tar (the diff ID).
func writeLayer(w io.Writer, nodes []node) (digest.Digest, error) {
	// A zero gzip.Header: no file name, no modification time, so nothing
	// of when or where the layer was made ends up in it.
	gz, err := gzip.NewWriterLevel(w, gzipLevel)
	if err != nil {
		return "", err
	}
	diff := digest.SHA256.Digester()
	tw := tar.NewWriter(io.MultiWriter(gz, diff.Hash()))
	for _, n := range nodes {
		if err := writeNode(tw, n); err != nil {
			return "", fmt.Errorf("%s: %w", n.label(), err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("finishing the layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return "", fmt.Errorf("finishing the layer: %w", err)
	}
	return diff.Digest(), nil
}

func writeNode(tw *tar.Writer, n node) error {
	h := &tar.Header{
		Name:    strings.TrimPrefix(n.Path, "/"),
		Mode:    tarMode(n.Mode),
		ModTime: epoch,
		Format:  tar.FormatPAX,
	}
	switch n.Type {
	case Directory:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
		return tw.WriteHeader(h)
	case Symlink:
		h.Typeflag = tar.TypeSymlink
		h.Mode = 0o777
		h.Linkname = n.Target
		return tw.WriteHeader(h)
	}
	h.Typeflag = tar.TypeReg
	if n.Source == "" {
		h.Size = int64(len(n.Data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(n.Data)
		return err
	}
	f, err := openRegular(n.Source)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", n.Source, err)
	}
	h.Size = fi.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if c, err := io.Copy(tw, io.LimitReader(f, h.Size)); err != nil {
		return fmt.Errorf("reading %s (%d of %d bytes): %w", n.Source, c, h.Size, err)
	} else if c != h.Size {
		return fmt.Errorf("reading %s: it shrank from %d to %d bytes while being read", n.Source, h.Size, c)
	}
	if k, _ := f.Read(make([]byte, 1)); k > 0 {
		return fmt.Errorf("reading %s: it grew past %d bytes while being read", n.Source, h.Size)
	}
	return nil
}

// openRegular opens a file entry's source, refusing anything but a
// regular file (following symlinks): a directory or a device has no
// contents to copy.
func openRegular(source string) (*os.File, error) {
	f, err := os.Open(source)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", source, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading %s: %w", source, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("reading %s: not a regular file (mode %v)", source, fi.Mode())
	}
	return f, nil
}

// tarMode is the tar header's mode of fs permission and special bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func descriptor(mediaType string, blob []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: digest.SHA256.FromBytes(blob), Size: int64(len(blob))}
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

func blobHeader(d v1.Descriptor) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: blobPath(d.Digest), Size: d.Size, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
}

func tarFile(tw *tar.Writer, name string, data []byte) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
