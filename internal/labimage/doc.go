// Package labimage describes the container images the lab's Kubernetes
// nodes need and keeps their archives up to date. The lab has no registry
// and no internet, so each image is built from binaries on this machine
// (internal/ociimage) and imported into every node's containerd, under
// the name the kubelet and the e2e suite ask for:
//
//	registry.k8s.io/pause:3.10.2                     the sandbox image: serval-pause as /pause
//	registry.k8s.io/e2e-test-images/agnhost:2.66.1   agnhost, built from k8s.io/kubernetes/test/images/agnhost
//
// WriteArchives writes both archives into a directory and rebuilds one
// only when what it is made of changed (a stamp beside each archive holds
// ociimage.Key of its inputs), so serval-lab up can call it every time;
// Import then imports into a node's containerd each image it lacks or
// holds at another manifest.
//
//	archives, err := labimage.WriteArchives(dir, labimage.Binaries{
//		Pause: "bin/serval-pause", Agnhost: agnhostPath}, logger)
//	...
//	c := ociimage.Containerd{Address: nodeSocket, Namespace: "k8s.io"}
//	imported, err := labimage.Import(ctx, c, archives, logger)
//
// The agnhost image is the binary and what of the real image's
// Dockerfile the binary itself relies on (/agnhost-2, /uploads, /tmp, the
// users and groups of /etc/passwd and /etc/group). It has none of the
// real image's Alpine tools (sh, curl, nc, dig, iperf, ...), which many
// e2e tests exec in agnhost pods.
package labimage
