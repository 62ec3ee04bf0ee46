// Package containerdtest runs a private containerd for tests: Debian's
// containerd with its root, state, socket and log in a temporary
// directory, the CRI plugin off (tests drive it with ctr), runc through
// containerd-shim-runc-v2, the overlayfs snapshotter. It never touches the
// machine's own containerd, nor another test's, as long as containers are
// run with Run (ctr run with a runc state directory and FIFO directory of
// its own, not the machine's /run/containerd/runc and /run/containerd/fifo).
// The shims' sockets are the one thing of it outside its directory:
// containerd 1.6 puts them in /run/containerd/s, named by a hash of the
// socket address, namespace and container.
//
// Start fails the test when containerd, ctr, runc or the shim are missing
// (apt-get install containerd runc; scripts/install-deps.sh does), or
// when not root; it never skips. When the test ends, whether it passed or
// not, every task is killed and deleted, every container deleted,
// containerd stopped, and then, for what a crash may have left, any shim
// serving this containerd (and its socket) and any process whose root is
// a snapshot of it killed and any mount under the directory detached,
// before the directory is removed.
//
//	d := containerdtest.Start(t)
//	c := d.Client("k8s.io")           // an ociimage.Containerd
//	err := c.Import(ctx, archive)
//	out := d.MustRun(t, "k8s.io", "--rm", name, "probe-1")  // ctr run
//	ls := d.MustCtr(t, "k8s.io", "tasks", "ls")
package containerdtest
