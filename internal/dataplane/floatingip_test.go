package dataplane

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/hoststate"
)

func TestFloatingIPGolden(t *testing.T) {
	d := newTestDP(t)
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	ep := wep("ns/w1", "cali1", pfx("10.65.0.1/32", "fd00:65::1/128"), nil, "allow-all")
	ep.IPNATs = []hoststate.IPNAT{{Internal: mustAddr("10.65.0.1"), External: mustAddr("203.0.113.10")}, {Internal: mustAddr("fd00:65::1"), External: mustAddr("2001:db8:f::10")}}
	d.OnWorkloadEndpointUpdate(ep)
	d.OnInSync()
	d.apply(t)
	var natChains []string
	for _, block := range strings.Split(d.nft.Dump(), "\tchain ") {
		if strings.HasPrefix(block, "nat-") {
			natChains = append(natChains, "\tchain "+block)
		}
	}
	golden(t, "floating_ip", strings.Join(natChains, ""))
	routes := d.routes.Dump()
	for _, want := range []string{"203.0.113.10/32 dev cali1", "2001:db8:f::10/128 dev cali1"} {
		if !strings.Contains(routes, want) {
			t.Errorf("no route %q for the floating IP; routes:\n%s", want, routes)
		}
	}
	// The floating IP goes when the endpoint loses it.
	ep.IPNATs = nil
	d.OnWorkloadEndpointUpdate(ep)
	d.apply(t)
	if s := d.nft.Dump(); strings.Contains(s, "dnat ip") || strings.Contains(s, "snat ip") {
		t.Errorf("NAT rules left after the floating IPs went:\n%s", s)
	}
	if routes := d.routes.Dump(); strings.Contains(routes, "203.0.113.10") {
		t.Errorf("floating IP route left:\n%s", routes)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestFloatingIPPackets: a workload with a floating IP per family is
// reached from another namespace (another host) through the external
// address, and the reply comes back from the external address (a TCP
// connection to it completes only then); the host routes the external
// address towards the workload.
func TestFloatingIPPackets(t *testing.T) {
	d := newKernelDP(t, "fiph")
	extName, ext := newNetns(t, "fipext")
	wName, w := newNetns(t, "fipw")
	for _, ns := range []string{d.ns, extName, wName} {
		inNS(t, ns, "sh", "-c", "sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 && ip link set lo up")
	}
	inNS(t, d.ns, "sh", "-c", "ip link add eth0 type veth peer name eth0 netns "+extName+
		" && ip link set eth0 up && ip addr add 10.0.0.100/24 dev eth0 && ip -6 addr add fd00:1::100/64 dev eth0 nodad"+
		" && ip route add default via 10.0.0.200 && ip -6 route add default via fd00:1::200"+
		" && ip link add cali1 address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns "+wName+" && ip link set cali1 up")
	inNS(t, extName, "sh", "-c", "ip link set eth0 up && ip addr add 10.0.0.200/24 dev eth0 && ip -6 addr add fd00:1::200/64 dev eth0 nodad"+
		" && ip route add 203.0.113.0/24 via 10.0.0.100 && ip -6 route add 2001:db8:f::/64 via fd00:1::100")
	inNS(t, wName, "sh", "-c", "ip link set eth0 up && ip addr add 10.65.0.1/32 dev eth0 && ip -6 addr add fd00:65::1/128 dev eth0 nodad"+
		" && ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0"+
		" && ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0")
	peers := acceptLog(t, w, "[::]:80")

	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}})
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	ep := wep("ns/w1", "cali1", pfx("10.65.0.1/32", "fd00:65::1/128"), nil, "allow-all")
	ep.IPNATs = []hoststate.IPNAT{{Internal: mustAddr("10.65.0.1"), External: mustAddr("203.0.113.10")},
		{Internal: mustAddr("fd00:65::1"), External: mustAddr("2001:db8:f::10")}}
	d.OnWorkloadEndpointUpdate(ep)
	d.OnInSync()
	if err := d.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(inNS(t, d.ns, "sh", "-c", "nft list ruleset; ip route; ip -6 route"))
		}
	})
	routes := inNS(t, d.ns, "sh", "-c", "ip route show proto 80; ip -6 route show proto 80")
	for _, want := range []string{"203.0.113.10 dev cali1", "2001:db8:f::10 dev cali1"} {
		if !strings.Contains(routes, want) {
			t.Errorf("host has no route %q for the floating IP:\n%s", want, routes)
		}
	}
	for _, c := range []struct{ ext, client string }{{"203.0.113.10:80", "10.0.0.200"}, {"[2001:db8:f::10]:80", "fd00:1::200"}} {
		remote, err := dialRemote(ext, c.ext)
		if err != nil {
			t.Errorf("other host → floating IP %s: %v", c.ext, err)
			continue
		}
		// The connection is to the external address: the reply came
		// from it, un-NATed on the workload's host.
		if remote != c.ext {
			t.Errorf("connection to %s has remote address %s", c.ext, remote)
		}
		select {
		case p := <-peers:
			if !strings.Contains(p, c.client) {
				t.Errorf("workload saw the connection from %s, want the client's own address %s", p, c.client)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("workload saw no connection for %s", c.ext)
		}
	}
	// Without the floating IP, the external address leads nowhere.
	ep.IPNATs = nil
	d.OnWorkloadEndpointUpdate(ep)
	if err := d.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if _, err := dialRemote(ext, "203.0.113.10:80"); err == nil {
		t.Errorf("floating IP still reachable after it was removed")
	}
}

// acceptLog serves TCP in ns and reports each connection's peer address.
func acceptLog(t *testing.T, ns netns.NsHandle, addr string) <-chan string {
	t.Helper()
	l, err := inNetns(ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	c := make(chan string, 16)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case c <- conn.RemoteAddr().String():
			default:
			}
			conn.Close()
		}
	}()
	return c
}

// dialRemote connects from ns to addr and returns the connection's remote
// address as the kernel saw the handshake.
func dialRemote(ns netns.NsHandle, addr string) (string, error) {
	return inNetns(ns, func() (string, error) {
		c, err := (&net.Dialer{Timeout: 600 * time.Millisecond}).Dial("tcp", addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.RemoteAddr().String(), nil
	})
}
