package cni_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// ping sends up to attempts ICMP echo requests from inside netns to dst,
// one a second, until one is answered.
func ping(from ns.NetNS, dst netip.Addr, attempts int) error {
	return from.Do(func(ns.NetNS) error {
		network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
		var typ icmp.Type = ipv4.ICMPTypeEcho
		if dst.Is6() {
			network, laddr, proto, typ = "ip6:ipv6-icmp", "::", 58, ipv6.ICMPTypeEchoRequest
		}
		c, err := icmp.ListenPacket(network, laddr)
		if err != nil {
			return fmt.Errorf("opening an ICMP socket: %w", err)
		}
		defer c.Close()
		id := os.Getpid() & 0xffff
		var last error
		for seq := 1; seq <= attempts; seq++ {
			msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("serval")}}
			b, _ := msg.Marshal(nil)
			if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				last = err
				time.Sleep(200 * time.Millisecond)
				continue
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				buf := make([]byte, 1500)
				n, peer, err := c.ReadFrom(buf)
				if err != nil {
					last = err
					break
				}
				m, err := icmp.ParseMessage(proto, buf[:n])
				if err != nil {
					continue
				}
				if e, ok := m.Body.(*icmp.Echo); ok && (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) &&
					e.ID == id && e.Seq == seq && peer.String() == dst.String() {
					return nil
				}
			}
		}
		return fmt.Errorf("no echo reply from %s: %v", dst, last)
	})
}

// TestPingBetweenWorkloads attaches two workloads to one host and pings
// each from the other over IPv4 and IPv6: the proxy ARP/NDP, the gateway
// routes and the host routes all have to be right for that.
func TestPingBetweenWorkloads(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.0.0", "net-ping", "", `,"assign_ipv6":"true"`)
	rtA, nsA := workload(t)
	rtB, nsB := workload(t)
	resA, err := h.add(t, l, rtA)
	if err != nil {
		t.Fatalf("ADD A: %v", err)
	}
	t.Cleanup(func() { _ = h.del(t, l, rtA) })
	resB, err := h.add(t, l, rtB)
	if err != nil {
		t.Fatalf("ADD B: %v", err)
	}
	t.Cleanup(func() { _ = h.del(t, l, rtB) })
	a, b := resultAddrs(t, resA), resultAddrs(t, resB)
	for i, fam := range []string{"IPv4", "IPv6"} {
		if err := ping(nsA, b[i], 5); err != nil {
			t.Errorf("%s A %s -> B %s: %v", fam, a[i], b[i], err)
		}
		if err := ping(nsB, a[i], 5); err != nil {
			t.Errorf("%s B %s -> A %s: %v", fam, b[i], a[i], err)
		}
	}
	// After B is gone, A no longer reaches its address.
	if err := h.del(t, l, rtB); err != nil {
		t.Fatal(err)
	}
	if err := ping(nsA, b[0], 1); err == nil {
		t.Errorf("A still reaches %s after B's DEL", b[0])
	}
}
