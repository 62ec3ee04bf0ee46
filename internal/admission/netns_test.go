package admission

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/roottest"
)

var nsSeq atomic.Int32

func needRoot(t *testing.T) {
	t.Helper()
	roottest.NeedRoot(t, "network namespaces, nftables")
	roottest.NeedProgram(t, "nft", "nftables")
}

// newNS creates a network namespace removed at cleanup; run runs a
// command in it and fails the test if it fails.
func newNS(t *testing.T, tag string) (name string, h netns.NsHandle, run func(args ...string) string) {
	t.Helper()
	name = fmt.Sprintf("svt-adm-%d-%d-%s", os.Getpid()%100000, nsSeq.Add(1), tag)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	run = func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), name, err, out)
		}
		return string(out)
	}
	return name, h, run
}

// kernelDataplane is the real dataplane programming the namespace h.
func kernelDataplane(t *testing.T, h netns.NsHandle) *dataplane.Dataplane {
	t.Helper()
	nlh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nlh.Close)
	dp, err := dataplane.New(dataplane.Options{
		NFT:    dataplane.NewKernelNFT(func() (dataplane.Conn, error) { return dataplane.NewConn(nftables.WithNetNSFd(int(h))) }),
		Routes: nlh, Sysctl: dataplane.NetnsSysctl{NS: h},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dp
}

// inNetns runs f on a thread in ns; the thread is never returned to the
// scheduler in the wrong namespace (it dies with its goroutine).
func inNetns[T any](ns netns.NsHandle, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			var zero T
			c <- res{zero, err}
			return
		}
		v, err := f()
		c <- res{v, err}
	}()
	r := <-c
	return r.v, r.err
}

// listen serves TCP in ns, accepting and closing connections.
func listen(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	l, err := inNetns(ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dial connects from ns to addr with a short timeout.
func dial(ns netns.NsHandle, addr string) error {
	_, err := inNetns(ns, func() (struct{}, error) {
		c, err := net.DialTimeout("tcp", addr, 400*time.Millisecond)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, c.Close()
	})
	return err
}
