package cni

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// blockHinter is an IPAM client that can be told which block a node
// allocated from last and says which it used (ipam.Client): a plugin
// process lives for one command, so the hint lives in a file.
type blockHinter interface {
	Hint(node string, bitLen int) netip.Prefix
	SetHint(node string, block netip.Prefix)
}

// hintFile is where serval-ipam keeps, per node and family, the block of
// the last allocation on this host, next to the host's IPAM lock: the
// next ADD reads that block while it reads the settings instead of
// listing the node's affinities first (one datastore round trip less). It
// is only a guess: a stale or wrong hint costs that round trip back, as
// IPAM checks the block's affinity as always.
func hintFile(lockFile string) string {
	if lockFile == "" {
		lockFile = DefaultIPAMLockFile
	}
	return lockFile + ".hint"
}

// readHints returns the hints of node in path ("node cidr" lines); a
// missing or unreadable file is no hint.
func readHints(path, node string) []netip.Prefix {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != node {
			continue
		}
		if p, err := netip.ParsePrefix(f[1]); err == nil && p.Masked() == p {
			out = append(out, p)
		}
	}
	return out
}

// writeHints records node's blocks in path, keeping other nodes' lines
// and replacing node's of the same family. The file is replaced whole
// (written aside, then renamed), so that a reader never sees half of it.
func writeHints(path, node string, blocks []netip.Prefix) error {
	old, _ := os.ReadFile(path)
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if f[0] == node {
			p, err := netip.ParsePrefix(f[1])
			if err != nil || replacesFamily(blocks, p) {
				continue
			}
		}
		fmt.Fprintln(&buf, f[0], f[1])
	}
	for _, b := range blocks {
		fmt.Fprintln(&buf, node, b)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(buf.Bytes())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

func replacesFamily(blocks []netip.Prefix, p netip.Prefix) bool {
	for _, b := range blocks {
		if b.Addr().Is4() == p.Addr().Is4() {
			return true
		}
	}
	return false
}

// loadHints gives im the hints of node from path and returns them, to be
// compared with what im used afterwards (saveHints).
func loadHints(im any, path, node string) []netip.Prefix {
	h, ok := im.(blockHinter)
	if !ok {
		return nil
	}
	hints := readHints(path, node)
	for _, p := range hints {
		h.SetHint(node, p)
	}
	return hints
}

// saveHints records the blocks im used last for node when they differ
// from those it was given. A failure only costs the next ADD a round
// trip, so it is logged.
func saveHints(im any, path, node string, loaded []netip.Prefix, log *slog.Logger) {
	h, ok := im.(blockHinter)
	if !ok {
		return
	}
	var changed []netip.Prefix
	for _, bits := range []int{32, 128} {
		p := h.Hint(node, bits)
		if !p.IsValid() {
			continue
		}
		known := false
		for _, l := range loaded {
			known = known || l == p
		}
		if !known {
			changed = append(changed, p)
		}
	}
	if len(changed) == 0 {
		return
	}
	if err := writeHints(path, node, changed); err != nil {
		log.Debug("could not record the block used for the next ADD", "file", path, "err", err)
	}
}
