// Package ociimage builds container images without a registry, a daemon
// or a Dockerfile: an OCI image-layout archive (a tar holding oci-layout,
// index.json and blobs/sha256/...) of one gzip layer, made from a list of
// files, directories and symlinks and an image config, and imports it into
// a containerd with its ctr client.
//
// The lab's Kubernetes nodes have no registry to pull from, so every image
// the cluster runs is built here and imported into each node's containerd
// under the name the kubelet or the e2e suite asks for.
//
// An archive is a function of its description: entries are sorted, every
// time in it is the epoch, owners are root, and the gzip header names no
// file and no time, so the same Image gives the same bytes and digests
// (with one Go toolchain: compress/flate's output is not promised across
// releases). Key digests the description, file contents included, so a
// caller can tell whether an archive it wrote before is still current
// without writing it again.
//
// index.json lists the one manifest with two annotations: containerd's
// io.containerd.image.name (the full reference, which ctr images import
// names the image by) and the OCI org.opencontainers.image.ref.name (the
// tag).
//
// Example:
//
//	img := ociimage.Image{
//		Name: "registry.example/hello:1.0",
//		Entries: []ociimage.Entry{
//			ociimage.File("/hello", "bin/hello", 0o755),
//			ociimage.Dir("/tmp", 0o777|fs.ModeSticky),
//		},
//		Config: ociimage.Config{Entrypoint: []string{"/hello"}},
//	}
//	w, err := ociimage.WriteFile("hello.tar", img)
//	if err != nil {
//		return err // names the entry: `entry 0 "/hello": reading bin/hello: ...`
//	}
//	c := ociimage.Containerd{Address: "/run/containerd/containerd.sock", Namespace: "k8s.io"}
//	err = c.Import(ctx, "hello.tar") // then c.Images(ctx)[w.Name] == w.Manifest.Digest
package ociimage
