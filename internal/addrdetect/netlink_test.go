package addrdetect

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/roottest"
)

// TestNetlinkInNamespace runs detection against the real kernel in a
// throwaway network namespace (a veth pair: this kernel has no dummy module).
func TestNetlinkInNamespace(t *testing.T) {
	roottest.NeedRoot(t, "creates a network namespace")
	name := fmt.Sprintf("svt-addr-%d", rand.IntN(1e6))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run("-n", name, "link", "add", "eth7", "type", "veth", "peer", "name", "eth7p")
	run("-n", name, "link", "set", "eth7p", "up")
	run("-n", name, "addr", "add", "172.17.8.101/24", "dev", "eth7")
	run("-n", name, "addr", "add", "fd00:8::101/64", "dev", "eth7", "nodad")
	run("-n", name, "link", "set", "eth7", "up")
	run("-n", name, "link", "set", "lo", "up")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)

	for _, c := range []struct {
		method string
		fam    Family
		want   string
	}{
		{"first-found", IPv4, "172.17.8.101/24"},
		{"first-found", IPv6, "fd00:8::101/64"},
		{"interface=eth7", IPv4, "172.17.8.101/24"},
		{"can-reach=172.17.8.1", IPv4, "172.17.8.101/24"},
		{"cidr=172.17.0.0/16", IPv4, "172.17.8.101/24"},
	} {
		m, err := ParseMethod(c.method)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Detect(Netlink{}, m, c.fam)
		if err != nil || got != netip.MustParsePrefix(c.want) {
			t.Errorf("%s IPv%d: got %v, %v; want %s", c.method, c.fam, got, err, c.want)
		}
	}
}
