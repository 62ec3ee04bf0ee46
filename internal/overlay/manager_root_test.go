package overlay

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// twoHosts makes two throwaway namespaces joined by a veth (10.0.1.11/24,
// fd10:1::11/64 and .12) and returns their names and netlink handles.
func twoHosts(t *testing.T) ([2]string, [2]*netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (creates network namespaces); run under the root-test lock")
	}
	var names [2]string
	var hs [2]*netlink.Handle
	tag := fmt.Sprintf("%d-%04x", os.Getpid()%100000, rand.IntN(1<<16))
	for i := range names {
		names[i] = fmt.Sprintf("svt-ov%d-%s", i+1, tag)
		if out, err := exec.Command("ip", "netns", "add", names[i]).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		name := names[i]
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		ns, err := netns.GetFromName(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		if hs[i], err = netlink.NewHandleAt(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hs[i].Close)
	}
	run(t, "", "ip", "link", "add", "eth0", "netns", names[0], "mtu", "9000", "type", "veth", "peer", "eth0", "netns", names[1], "mtu", "9000")
	for i, n := range names {
		run(t, n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		run(t, n, "ip", "link", "set", "lo", "up")
		run(t, n, "ip", "addr", "add", fmt.Sprintf("10.0.1.1%d/24", i+1), "dev", "eth0")
		run(t, n, "ip", "addr", "add", fmt.Sprintf("fd10:1::1%d/64", i+1), "dev", "eth0", "nodad")
		run(t, n, "ip", "link", "set", "eth0", "up")
	}
	return names, hs
}

func run(t *testing.T, ns string, args ...string) string {
	t.Helper()
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func statistic(t *testing.T, ns, dev, what string) int {
	var n int
	fmt.Sscan(strings.TrimSpace(run(t, ns, "cat", "/sys/class/net/"+dev+"/statistics/"+what)), &n)
	return n
}

// TestManagerKernel programs two real hosts from the datastore view alone
// and sends traffic through the tunnel, both families; CrossSubnet on one
// subnet programs a native route and nothing goes through the device.
func TestManagerKernel(t *testing.T) {
	names, hs := twoHosts(t)
	ns := nodes()[:2]
	in := func(i int, mode api.EncapMode) Input {
		return Input{Node: ns[i].Name, Nodes: ns, Blocks: blocks(), UplinkMTU: 9000, Pools: []*api.IPPool{
			pool("v4", "192.168.0.0/16", mode, ""), pool("v6", "fd00:100::/48", mode, "")}}
	}
	apply := func(mode api.EncapMode) {
		for i := range hs {
			m := NewManager(hs[i], nil)
			d := Compute(in(i, mode))
			if err := m.Apply(d); err != nil {
				t.Fatalf("apply %s on %s: %v", mode, names[i], err)
			}
			// A second apply finds nothing to do and fails on nothing.
			if err := m.Apply(d); err != nil {
				t.Fatalf("second apply %s on %s: %v", mode, names[i], err)
			}
		}
	}
	apply(api.EncapAlways)
	got := run(t, names[0], "ip", "-d", "link", "show", DeviceV4)
	for _, w := range []string{"mtu 8950", "vxlan id 4096", "local 10.0.1.11", "dstport 4789", "nolearning", "66:00:00:00:00:01"} {
		if !strings.Contains(got, w) {
			t.Errorf("device %s lacks %q:\n%s", DeviceV4, w, got)
		}
	}
	routes := run(t, names[0], "ip", "route", "show", "proto", "81") + run(t, names[0], "ip", "-6", "route", "show", "proto", "81")
	for _, w := range []string{"192.168.0.64/26 via 192.168.0.65 dev vxlan.serval onlink", "fd00:100::40/122 via fd00:100::41 dev vxlan-v6.serval"} {
		if !strings.Contains(routes, w) {
			t.Errorf("routes lack %q:\n%s", w, routes)
		}
	}
	fdb := run(t, names[0], "bridge", "fdb", "show", "dev", DeviceV4)
	if !strings.Contains(fdb, "66:00:00:00:00:02 dst 10.0.1.12 self permanent") {
		t.Errorf("fdb:\n%s", fdb)
	}
	before := statistic(t, names[0], DeviceV4, "tx_packets")
	// h2's tunnel address lies in h2's block: reaching it crosses the tunnel.
	run(t, names[0], "ping", "-c", "2", "-W", "2", "-I", "192.168.0.1", "192.168.0.65")
	run(t, names[0], "ping", "-6", "-c", "2", "-W", "2", "fd00:100::41")
	// The largest unfragmented packet: device MTU 8950 minus 28 of headers.
	run(t, names[0], "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "8922", "192.168.0.65")
	if after := statistic(t, names[0], DeviceV4, "tx_packets"); after-before < 3 {
		t.Errorf("vxlan tx_packets went %d -> %d: traffic did not use the tunnel", before, after)
	}

	// CrossSubnet, same subnet: a native route, no FDB, the device idle.
	apply(api.EncapCrossSubnet)
	routes = run(t, names[0], "ip", "route", "show", "proto", "81")
	if !strings.Contains(routes, "192.168.0.64/26 via 10.0.1.12 dev eth0") {
		t.Errorf("CrossSubnet same-subnet route:\n%s", routes)
	}
	if fdb := run(t, names[0], "bridge", "fdb", "show", "dev", DeviceV4); strings.Contains(fdb, "dst 10.0.1.12") {
		t.Errorf("stale FDB entry after CrossSubnet:\n%s", fdb)
	}

	// FelixConfiguration's port, VNI and MTU: the device is recreated
	// with them (the kernel cannot change VNI or port in place) and the
	// tunnel still carries traffic.
	for i := range hs {
		in := in(i, api.EncapAlways)
		in.Settings = Settings{VXLANPort: ptr(8472), VXLANVNI: ptr(77), VXLANMTU: ptr(1400)}
		if err := NewManager(hs[i], nil).Apply(Compute(in)); err != nil {
			t.Fatalf("apply with settings on %s: %v\n%s%s", names[i], err, run(t, names[i], "ip", "-6", "-d", "link", "show", DeviceV6), run(t, names[i], "ip", "-6", "addr", "show", "dev", DeviceV6))
		}
	}
	got = run(t, names[0], "ip", "-d", "link", "show", DeviceV4)
	for _, w := range []string{"mtu 1400", "vxlan id 77", "dstport 8472"} {
		if !strings.Contains(got, w) {
			t.Errorf("device %s lacks %q after settings:\n%s", DeviceV4, w, got)
		}
	}
	run(t, names[0], "ping", "-c", "1", "-W", "2", "-I", "192.168.0.1", "192.168.0.65")
	// From CrossSubnet's native IPv6 route back to the tunnel (IPv6 will
	// not replace one by the other in place).
	run(t, names[0], "ping", "-6", "-c", "1", "-W", "2", "fd00:100::41")

	// Never: the overlay removes everything it programmed.
	apply(api.EncapNever)
	if r := run(t, names[0], "ip", "route", "show", "proto", "81"); r != "" {
		t.Errorf("routes left after Never:\n%s", r)
	}
	if l := run(t, names[0], "ip", "link", "show"); strings.Contains(l, "vxlan") {
		t.Errorf("device left after Never:\n%s", l)
	}
}
