package ociimage

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// EntryType is what an Entry makes in the image's file system.
type EntryType int

const (
	// RegularFile is a file whose contents come from a file on disk
	// (Entry.Source) or from memory (Entry.Data).
	RegularFile EntryType = iota + 1
	// Directory is an empty directory (entries under it fill it).
	Directory
	// Symlink is a symbolic link to Entry.Target.
	Symlink
)

func (t EntryType) String() string {
	switch t {
	case RegularFile:
		return "file"
	case Directory:
		return "directory"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("EntryType(%d)", int(t))
}

// Entry is one file, directory or symlink of an image. Every entry is
// owned by root (uid and gid 0).
type Entry struct {
	// Path is where the entry is in the image: absolute and clean
	// ("/etc/passwd", not "etc/passwd" or "/etc//passwd").
	Path string
	Type EntryType
	// Source is the file on disk whose contents a RegularFile has; it is
	// read when the archive is written (and by Key).
	Source string
	// Data is a RegularFile's contents when Source is "". Nil Data and no
	// Source is an error, not an empty file: it is what a caller that
	// forgot the source gives (FileData makes an empty file).
	Data []byte
	// Target is where a Symlink points, as given: relative to the link's
	// directory, or absolute within the image.
	Target string
	// Mode is the permission bits, with fs.ModeSticky, fs.ModeSetuid and
	// fs.ModeSetgid allowed too; zero means 0644 for a file, 0755 for a
	// directory. A symlink has none. The mode of the file on disk is never
	// used: the image would then depend on the umask of whoever built it.
	Mode fs.FileMode
}

// File is a regular file at path in the image with the contents of the
// file source on disk.
func File(path, source string, mode fs.FileMode) Entry {
	return Entry{Path: path, Type: RegularFile, Source: source, Mode: mode}
}

// FileData is a regular file at path in the image holding data (none
// when data is nil or empty).
func FileData(path string, data []byte, mode fs.FileMode) Entry {
	if data == nil {
		data = []byte{}
	}
	return Entry{Path: path, Type: RegularFile, Data: data, Mode: mode}
}

// Dir is a directory at path in the image.
func Dir(path string, mode fs.FileMode) Entry {
	return Entry{Path: path, Type: Directory, Mode: mode}
}

// Link is a symbolic link at path in the image pointing to target.
func Link(path, target string) Entry {
	return Entry{Path: path, Type: Symlink, Target: target}
}

// Config is what the runtime needs to run the image: the subset of the
// OCI image config that Serval's images set.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // NAME=VALUE
	WorkingDir string
	User       string // "uid", "uid:gid" or a name from the image's /etc/passwd
}

// Image describes an image: its name, its files (one layer) and its
// config. Its platform is the one this program was built for
// (runtime.GOOS, runtime.GOARCH), since the files it copies are
// usually binaries built alongside it.
type Image struct {
	// Name is the full reference the image is imported under:
	// DOMAIN/PATH:TAG (see ParseReference).
	Name    string
	Entries []Entry
	Config  Config
}

// allowedModeBits are the bits of an Entry.Mode that a tar header can
// carry.
const allowedModeBits = fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid

// node is one entry of the layer as it is written: an Entry of the image,
// or a parent directory no entry named (index -1).
type node struct {
	Entry
	index int
}

func (n node) label() string {
	if n.index < 0 {
		return fmt.Sprintf("parent directory %q", n.Path)
	}
	return entryLabel(n.index, n.Path)
}

func entryLabel(i int, p string) string { return fmt.Sprintf("entry %d %q", i, p) }

// plan checks an image and returns its reference and the layer's entries
// in archive order: sorted by path, every parent directory present (a
// path sorts after its parent's, which is its prefix), modes defaulted.
// Every error names the entry.
func plan(img Image) (Reference, []node, error) {
	ref, err := ParseReference(img.Name)
	if err != nil {
		return Reference{}, nil, fmt.Errorf("image name: %w", err)
	}
	byPath := make(map[string]node, len(img.Entries))
	for i, e := range img.Entries {
		if err := checkEntry(e); err != nil {
			return Reference{}, nil, fmt.Errorf("%s: %w", entryLabel(i, e.Path), err)
		}
		if prev, ok := byPath[e.Path]; ok {
			return Reference{}, nil, fmt.Errorf("%s: the same path as %s", entryLabel(i, e.Path), prev.label())
		}
		if e.Mode == 0 {
			switch e.Type {
			case RegularFile:
				e.Mode = 0o644
			case Directory:
				e.Mode = 0o755
			}
		}
		byPath[e.Path] = node{Entry: e, index: i}
	}
	// Parents: each must be a directory, made with 0755 if no entry names it.
	for i, e := range img.Entries {
		for p := path.Dir(e.Path); p != "/"; p = path.Dir(p) {
			parent, ok := byPath[p]
			if !ok {
				byPath[p] = node{Entry: Entry{Path: p, Type: Directory, Mode: 0o755}, index: -1}
				continue
			}
			if parent.Type != Directory {
				return Reference{}, nil, fmt.Errorf("%s: its parent %q is a %s (%s), not a directory", entryLabel(i, e.Path), p, parent.Type, parent.label())
			}
		}
	}
	nodes := make([]node, 0, len(byPath))
	for _, n := range byPath {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].Path < nodes[b].Path })
	return ref, nodes, nil
}

// checkEntry checks one entry on its own.
func checkEntry(e Entry) error {
	if e.Path == "" || e.Path[0] != '/' {
		return fmt.Errorf("path must be absolute")
	}
	if e.Path == "/" {
		return fmt.Errorf("the image's root is not an entry")
	}
	if path.Clean(e.Path) != e.Path {
		return fmt.Errorf("path must be clean (%q)", path.Clean(e.Path))
	}
	if strings.ContainsRune(e.Path, 0) {
		return fmt.Errorf("path holds a NUL byte")
	}
	if e.Mode&^allowedModeBits != 0 {
		return fmt.Errorf("mode %v has bits other than permissions, sticky, setuid and setgid", e.Mode)
	}
	switch e.Type {
	case RegularFile:
		if e.Source != "" && e.Data != nil {
			return fmt.Errorf("a file has either a source or data, not both")
		}
		if e.Source == "" && e.Data == nil {
			return fmt.Errorf("a file needs a source or data, and has neither")
		}
		if e.Target != "" {
			return fmt.Errorf("a file has no target")
		}
	case Directory:
		if e.Source != "" || e.Data != nil || e.Target != "" {
			return fmt.Errorf("a directory has no source, data or target")
		}
	case Symlink:
		if e.Source != "" || e.Data != nil {
			return fmt.Errorf("a symlink has no source or data")
		}
		if e.Mode != 0 {
			return fmt.Errorf("a symlink has no mode (it is always 0777)")
		}
		return checkTarget(e.Path, e.Target)
	default:
		return fmt.Errorf("unknown entry type %v", e.Type)
	}
	return nil
}

// checkTarget refuses a symlink target that is empty, holds a NUL byte,
// or, relative, climbs above the image's root through "..": inside the
// container that resolves to the root itself, so whoever wrote it meant
// something else (a path on the build machine, most likely).
func checkTarget(link, target string) error {
	if target == "" {
		return fmt.Errorf("a symlink needs a target")
	}
	if strings.ContainsRune(target, 0) {
		return fmt.Errorf("target holds a NUL byte")
	}
	if target[0] == '/' {
		return nil
	}
	depth := strings.Count(path.Dir(link), "/")
	if path.Dir(link) == "/" {
		depth = 0
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return fmt.Errorf("relative target %q climbs above the image's root", target)
			}
		default:
			depth++
		}
	}
	return nil
}
