package ociimage

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	digest "github.com/opencontainers/go-digest"
)

// keyFormat names how this package lays out an archive. Change it
// whenever a change here would make the same Image give other bytes, so
// that a Key computed before no longer matches and callers rebuild.
const keyFormat = "serval-ociimage/1"

// keyEntry is one entry of the layer as Key sees it: the file's contents
// by digest.
type keyEntry struct {
	Path     string
	Type     EntryType
	Mode     uint32
	Target   string        `json:",omitempty"`
	Contents digest.Digest `json:",omitempty"`
}

// Key is a digest of everything the archive of img is made from: its
// name, config, platform, entries and the contents of its files, which it
// reads. Two images with the same Key give the same archive, so a caller
// that stored the Key of an archive it wrote can skip writing it again
// (while this package's format is unchanged: keyFormat). It fails where
// Write would, naming the entry.
func Key(img Image) (digest.Digest, error) {
	ref, nodes, err := plan(img)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", img.Name, err)
	}
	entries := make([]keyEntry, 0, len(nodes))
	for _, n := range nodes {
		e := keyEntry{Path: n.Path, Type: n.Type, Mode: uint32(n.Mode), Target: n.Target}
		if n.Type == RegularFile {
			if n.Source == "" {
				e.Contents = digest.SHA256.FromBytes(n.Data)
			} else if e.Contents, err = fileDigest(n.Source); err != nil {
				return "", fmt.Errorf("image %s: %s: %w", img.Name, n.label(), err)
			}
		}
		entries = append(entries, e)
	}
	desc, err := json.Marshal(struct {
		Format   string
		Name     string
		Platform string
		Gzip     int
		Config   Config
		Entries  []keyEntry
	}{keyFormat, ref.String(), runtime.GOOS + "/" + runtime.GOARCH, gzipLevel, img.Config, entries})
	if err != nil {
		return "", fmt.Errorf("image %s: encoding its description: %w", img.Name, err)
	}
	return digest.SHA256.FromBytes(desc), nil
}

func fileDigest(source string) (digest.Digest, error) {
	f, err := openRegular(source)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d := digest.SHA256.Digester()
	if _, err := io.Copy(d.Hash(), f); err != nil {
		return "", fmt.Errorf("reading %s: %w", source, err)
	}
	return d.Digest(), nil
}
