package ociimage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// Containerd is one containerd, reached with its ctr client rather than
// containerd's Go module, which is large, for two commands: ctr is
// installed with containerd, at its version, and speaks its API.
type Containerd struct {
	// Ctr is ctr's path; "" means ctr on PATH.
	Ctr string
	// Address is containerd's gRPC socket.
	Address string
	// Namespace is the containerd namespace images go into: "k8s.io" is
	// the one the CRI plugin, and so the kubelet, sees.
	Namespace string
}

func (c Containerd) ctr(ctx context.Context, args ...string) ([]byte, error) {
	bin := c.Ctr
	if bin == "" {
		bin = "ctr"
	}
	full := append([]string{"--address", c.Address, "--namespace", c.Namespace}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(full, " "), err, bytes.TrimSpace(append(stderr.Bytes(), stdout.Bytes()...)))
	}
	return stdout.Bytes(), nil
}

// Import imports the image archive at path (one WriteFile wrote) into the
// containerd and unpacks it for the default snapshotter, under the name
// in its index.json. An image of that name already there is replaced.
func (c Containerd) Import(ctx context.Context, path string) error {
	if _, err := c.ctr(ctx, "images", "import", path); err != nil {
		return fmt.Errorf("importing %s into containerd at %s (namespace %s): %w", path, c.Address, c.Namespace, err)
	}
	return nil
}

// Images lists the images in the containerd's namespace: each name with
// the digest of its target (for an image Import made, the manifest's,
// Written.Manifest.Digest), so that a caller imports only what is missing
// or different.
func (c Containerd) Images(ctx context.Context) (map[string]digest.Digest, error) {
	out, err := c.ctr(ctx, "images", "ls")
	if err != nil {
		return nil, fmt.Errorf("listing the images of containerd at %s (namespace %s): %w", c.Address, c.Namespace, err)
	}
	images, err := parseImageList(out)
	if err != nil {
		return nil, fmt.Errorf("listing the images of containerd at %s (namespace %s): %w", c.Address, c.Namespace, err)
	}
	return images, nil
}

// parseImageList reads ctr images ls: a header, then per image REF TYPE
// DIGEST SIZE PLATFORMS LABELS separated by blanks (SIZE has one inside,
// "1.2 MiB", but comes after what is read here).
func parseImageList(out []byte) (map[string]digest.Digest, error) {
	images := map[string]digest.Digest{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if first {
			first = false
			if len(f) < 3 || f[0] != "REF" || f[2] != "DIGEST" {
				return nil, fmt.Errorf("ctr images ls: unexpected header %q", sc.Text())
			}
			continue
		}
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("ctr images ls: unexpected line %q", sc.Text())
		}
		d, err := digest.Parse(f[2])
		if err != nil {
			return nil, fmt.Errorf("ctr images ls: image %s: %w", f[0], err)
		}
		images[f[0]] = d
	}
	return images, sc.Err()
}
