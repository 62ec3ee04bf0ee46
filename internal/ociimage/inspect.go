package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Contents is what Inspect found in an archive, every digest and size
// checked.
type Contents struct {
	// Name and Tag are the manifest's io.containerd.image.name and
	// org.opencontainers.image.ref.name annotations in index.json.
	Name, Tag string
	Index     v1.Index
	Manifest  v1.Manifest
	Config    v1.Image
	// Files are the layer's entries, in archive order.
	Files []FileInfo
}

// FileInfo is one entry of a layer.
type FileInfo struct {
	Path     string // absolute
	Type     EntryType
	Mode     fs.FileMode // permissions, sticky, setuid, setgid
	Size     int64
	Target   string        // a symlink's
	Contents digest.Digest // a regular file's
	UID, GID int
	ModTime  time.Time
}

// maxJSONBlob bounds what Inspect holds in memory of a blob: manifests and
// configs are a few hundred bytes; layers are streamed instead.
const maxJSONBlob = 1 << 20

// Inspect reads the archive at path as containerd's importer would and
// checks it: an oci-layout file, an index.json listing one manifest with
// its name annotations, every blob's digest and size as its descriptors
// say, the manifest's config and one gzip layer, whose uncompressed digest
// is the config's diff ID. It reads the archive twice, the second time for
// the layer's entries, so that a layer is never held in memory. It reads
// the archives this package writes: one manifest, one layer.
func Inspect(path string) (*Contents, error) {
	c, err := inspect(path)
	if err != nil {
		return nil, fmt.Errorf("inspecting image archive %s: %w", path, err)
	}
	return c, nil
}

// blob is what the first pass keeps of a blob.
type blob struct {
	size int64
	data []byte // when at most maxJSONBlob
}

func inspect(archive string) (*Contents, error) {
	blobs := map[digest.Digest]blob{}
	var layout, index []byte
	err := eachEntry(archive, func(h *tar.Header, r io.Reader) (bool, error) {
		switch {
		case h.Name == v1.ImageLayoutFile:
			b, err := readSmall(r, h.Name)
			layout = b
			return false, err
		case h.Name == v1.ImageIndexFile:
			b, err := readSmall(r, h.Name)
			index = b
			return false, err
		case strings.HasPrefix(h.Name, "blobs/") && h.Typeflag == tar.TypeReg:
			d, err := blobDigest(h.Name)
			if err != nil {
				return false, err
			}
			v := d.Verifier()
			var keep bytes.Buffer
			w := io.Writer(v)
			if h.Size <= maxJSONBlob {
				w = io.MultiWriter(v, &keep)
			}
			n, err := io.Copy(w, r)
			if err != nil {
				return false, fmt.Errorf("reading %s: %w", h.Name, err)
			}
			if !v.Verified() {
				return false, fmt.Errorf("blob %s: its contents have another digest", h.Name)
			}
			b := blob{size: n}
			if h.Size <= maxJSONBlob {
				b.data = keep.Bytes()
			}
			blobs[d] = b
		case h.Typeflag == tar.TypeDir && (h.Name == "blobs/" || h.Name == "blobs/sha256/"):
		default:
			return false, fmt.Errorf("unexpected entry %q", h.Name)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if layout == nil {
		return nil, fmt.Errorf("no %s", v1.ImageLayoutFile)
	}
	var l v1.ImageLayout
	if err := json.Unmarshal(layout, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", v1.ImageLayoutFile, err)
	}
	if l.Version != v1.ImageLayoutVersion {
		return nil, fmt.Errorf("%s: version %q, want %q", v1.ImageLayoutFile, l.Version, v1.ImageLayoutVersion)
	}
	if index == nil {
		return nil, fmt.Errorf("no %s", v1.ImageIndexFile)
	}
	c := &Contents{}
	if err := json.Unmarshal(index, &c.Index); err != nil {
		return nil, fmt.Errorf("%s: %w", v1.ImageIndexFile, err)
	}
	if c.Index.SchemaVersion != 2 || c.Index.MediaType != v1.MediaTypeImageIndex {
		return nil, fmt.Errorf("%s: schema %d, media type %q: not an OCI index", v1.ImageIndexFile, c.Index.SchemaVersion, c.Index.MediaType)
	}
	if len(c.Index.Manifests) != 1 {
		return nil, fmt.Errorf("%s lists %d manifests, want 1", v1.ImageIndexFile, len(c.Index.Manifests))
	}
	md := c.Index.Manifests[0]
	c.Name, c.Tag = md.Annotations[AnnotationImageName], md.Annotations[v1.AnnotationRefName]
	ref, err := ParseReference(c.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: annotation %s: %w", v1.ImageIndexFile, AnnotationImageName, err)
	}
	if c.Tag != ref.Tag {
		return nil, fmt.Errorf("%s: annotation %s is %q, but the name's tag is %q", v1.ImageIndexFile, v1.AnnotationRefName, c.Tag, ref.Tag)
	}
	if err := decodeBlob(blobs, md, v1.MediaTypeImageManifest, &c.Manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if c.Manifest.SchemaVersion != 2 || c.Manifest.MediaType != v1.MediaTypeImageManifest {
		return nil, fmt.Errorf("manifest: schema %d, media type %q", c.Manifest.SchemaVersion, c.Manifest.MediaType)
	}
	if err := decodeBlob(blobs, c.Manifest.Config, v1.MediaTypeImageConfig, &c.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(c.Manifest.Layers) != 1 || len(c.Config.RootFS.DiffIDs) != 1 {
		return nil, fmt.Errorf("%d layers and %d diff IDs, want 1 of each", len(c.Manifest.Layers), len(c.Config.RootFS.DiffIDs))
	}
	if p := md.Platform; p != nil && (p.OS != c.Config.OS || p.Architecture != c.Config.Architecture) {
		return nil, fmt.Errorf("index.json says platform %s/%s, the config %s/%s", p.OS, p.Architecture, c.Config.OS, c.Config.Architecture)
	}
	ld := c.Manifest.Layers[0]
	if err := checkDescriptor(blobs, ld, v1.MediaTypeImageLayerGzip); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	var diffID digest.Digest
	err = eachEntry(archive, func(h *tar.Header, r io.Reader) (bool, error) {
		if h.Name != blobPath(ld.Digest) {
			return false, nil
		}
		var lerr error
		diffID, c.Files, lerr = readLayer(r)
		return true, lerr
	})
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", ld.Digest, err)
	}
	if diffID != c.Config.RootFS.DiffIDs[0] {
		return nil, fmt.Errorf("layer %s: uncompressed digest %s, the config says %s", ld.Digest, diffID, c.Config.RootFS.DiffIDs[0])
	}
	return c, nil
}

// eachEntry calls fn with each entry of the tar at archive until fn says
// it is done.
func eachEntry(archive string, fn func(*tar.Header, io.Reader) (done bool, err error)) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		done, err := fn(h, tr)
		if err != nil || done {
			return err
		}
	}
}

func readSmall(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONBlob+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxJSONBlob {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxJSONBlob)
	}
	return b, nil
}

func blobDigest(name string) (digest.Digest, error) {
	rest := strings.TrimPrefix(name, "blobs/")
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", fmt.Errorf("blob %q is not blobs/ALGORITHM/DIGEST", name)
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("blob %q: %w", name, err)
	}
	return d, nil
}

func checkDescriptor(blobs map[digest.Digest]blob, d v1.Descriptor, mediaType string) error {
	if d.MediaType != mediaType {
		return fmt.Errorf("media type %q, want %q", d.MediaType, mediaType)
	}
	b, ok := blobs[d.Digest]
	if !ok {
		return fmt.Errorf("blob %s is not in the archive", d.Digest)
	}
	if b.size != d.Size {
		return fmt.Errorf("blob %s has %d bytes, its descriptor says %d", d.Digest, b.size, d.Size)
	}
	return nil
}

func decodeBlob(blobs map[digest.Digest]blob, d v1.Descriptor, mediaType string, v any) error {
	if err := checkDescriptor(blobs, d, mediaType); err != nil {
		return err
	}
	data := blobs[d.Digest].data
	if data == nil {
		return fmt.Errorf("blob %s is larger than %d bytes", d.Digest, maxJSONBlob)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return nil
}

// readLayer lists a gzip layer's entries and returns its uncompressed
// digest.
func readLayer(r io.Reader) (digest.Digest, []FileInfo, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return "", nil, err
	}
	diff := digest.SHA256.Digester()
	tr := tar.NewReader(io.TeeReader(gz, diff.Hash()))
	var files []FileInfo
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, err
		}
		f := FileInfo{
			Path: "/" + strings.TrimSuffix(h.Name, "/"), Size: h.Size, Target: h.Linkname,
			UID: h.Uid, GID: h.Gid, ModTime: h.ModTime, Mode: fs.FileMode(h.Mode).Perm(),
		}
		if f.Path != path.Clean(f.Path) {
			return "", nil, fmt.Errorf("entry %q: not a clean path", h.Name)
		}
		if h.Mode&0o4000 != 0 {
			f.Mode |= fs.ModeSetuid
		}
		if h.Mode&0o2000 != 0 {
			f.Mode |= fs.ModeSetgid
		}
		if h.Mode&0o1000 != 0 {
			f.Mode |= fs.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeReg:
			f.Type = RegularFile
			d := digest.SHA256.Digester()
			if _, err := io.Copy(d.Hash(), tr); err != nil {
				return "", nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
			f.Contents = d.Digest()
		case tar.TypeDir:
			f.Type = Directory
		case tar.TypeSymlink:
			f.Type = Symlink
		default:
			return "", nil, fmt.Errorf("entry %q: tar type %q, not a file, directory or symlink", h.Name, h.Typeflag)
		}
		files = append(files, f)
	}
	// The rest of the tar stream (its end-of-archive blocks and padding)
	// belongs to the diff ID too.
	if _, err := io.Copy(io.Discard, io.TeeReader(gz, diff.Hash())); err != nil {
		return "", nil, err
	}
	if err := gz.Close(); err != nil {
		return "", nil, err
	}
	return diff.Digest(), files, nil
}
