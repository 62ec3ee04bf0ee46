package overlay

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/overlay"
)

var pairs = [][2]string{{"w1", "w2"}, {"w2", "w1"}, {"w1", "w3"}, {"w3", "w1"}, {"w2", "w3"}, {"w3", "w2"}}

func reachAll(t *testing.T, l *lab.Lab, what string) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() error {
		for _, p := range pairs {
			if !probe(t, l, p[0], p[1]) {
				return fmt.Errorf("%s cannot reach %s", p[0], p[1])
			}
		}
		return nil
	})
}

// TestVXLANAcrossSubnets: a fabric of MTU 1400 whose router knows no
// workload route. VXLAN Always reaches everything and encapsulates even
// within a subnet; CrossSubnet routes natively within one and
// encapsulates across; switching modes converges without restarts; the
// workload MTU is the fabric's less 50; the largest DF ping and a bulk TCP
// transfer cross the tunnel; a workload cannot inject VXLAN; natOutgoing
// leaves by the host's address.
func TestVXLANAcrossSubnets(t *testing.T) {
	l := upLab(t, "x", topology(1400))
	pids := map[string]int{}
	for _, h := range []string{"h1", "h2", "h3"} {
		pids[h] = l.AgentPID(h)
	}
	reachAll(t, l, "VXLAN Always reaches every workload")

	// Always encapsulates even to a host of the same subnet.
	before := counter(t, l, "h1", overlay.DeviceV4, "tx_packets")
	if !probe(t, l, "w1", "w2") {
		t.Fatal("w1 cannot reach w2")
	}
	if after := counter(t, l, "h1", overlay.DeviceV4, "tx_packets"); after <= before {
		t.Errorf("Always: w1 -> w2 did not go through %s (tx %d -> %d)", overlay.DeviceV4, before, after)
	}

	checkMTU(t, l, 1400-overlay.OverheadV4)
	checkPolicy(t, l)
	checkGuard(t, l)
	checkNATOutgoing(t, l)

	// CrossSubnet: native within 172.31.1.0/24, tunnel to h3.
	setMode(t, l, "CrossSubnet")
	eventually(t, 30*time.Second, "h1 routes w2's block natively and w3's through the tunnel", func() error {
		r := mustSh(t, l.Netns("h1"), "ip", "route", "show", "proto", strconv.Itoa(overlay.RouteProtocol))
		if !strings.Contains(r, "via 172.31.1.12 dev eth0") || !strings.Contains(r, "dev "+overlay.DeviceV4+" onlink") {
			return fmt.Errorf("routes:\n%s", r)
		}
		return nil
	})
	reachAll(t, l, "CrossSubnet reaches every workload")
	before = counter(t, l, "h1", overlay.DeviceV4, "tx_packets")
	mustSh(t, l.Netns("w1"), "ping", "-c", "5", "-i", "0.2", "-W", "2", wip(t, l, "w2").String())
	if after := counter(t, l, "h1", overlay.DeviceV4, "tx_packets"); after != before {
		t.Errorf("CrossSubnet: w1 -> w2 (same subnet) was encapsulated (tx %d -> %d)", before, after)
	}
	mustSh(t, l.Netns("w1"), "ping", "-c", "5", "-i", "0.2", "-W", "2", wip(t, l, "w3").String())
	if after := counter(t, l, "h1", overlay.DeviceV4, "tx_packets"); after < before+5 {
		t.Errorf("CrossSubnet: w1 -> w3 (other subnet) was not encapsulated (tx %d -> %d)", before, after)
	}

	// Never: the overlay steps aside; across the router nothing gets
	// through (it knows no workload route), and back to Always it all
	// comes back, with the same agents.
	setMode(t, l, "Never")
	eventually(t, 30*time.Second, "the overlay removes its routes and device", func() error {
		r := mustSh(t, l.Netns("h1"), "ip", "route", "show", "proto", strconv.Itoa(overlay.RouteProtocol))
		ln := mustSh(t, l.Netns("h1"), "ip", "link", "show")
		if strings.TrimSpace(r) != "" || strings.Contains(ln, overlay.DeviceV4) {
			return fmt.Errorf("left:\n%s%s", r, ln)
		}
		return nil
	})
	if probe(t, l, "w1", "w3") {
		t.Error("Never: w1 reached w3 across a router that knows no workload route")
	}
	// Within the subnet, BGP's own routes come back once the overlay's
	// are gone (they stood aside for them).
	eventually(t, 30*time.Second, "Never: w1 reaches w2 by BGP's routes", func() error {
		if !probe(t, l, "w1", "w2") {
			return fmt.Errorf("w1 cannot reach w2")
		}
		return nil
	})

	// IPIP on a kernel without it: refused, reported, never in the clear
	// (not even to h2 on the same subnet, which BGP could reach).
	setPool(t, l, "vxlanMode: Never\n  ipipMode: Always")
	eventually(t, 30*time.Second, "IPIP pool reported and its blocks unreachable", func() error {
		r := mustSh(t, l.Netns("h1"), "ip", "route", "show", "proto", strconv.Itoa(overlay.RouteProtocol))
		if strings.Count(r, "unreachable") != 2 {
			return fmt.Errorf("routes:\n%s", r)
		}
		h := health(t, l, "h1")
		if h.Ready || !strings.Contains(strings.Join(h.Reasons, " "), "ipipMode") {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})
	if probe(t, l, "w1", "w2") {
		t.Error("IPIP unavailable: w1 reached w2 in the clear")
	}
	if out := statusText(t, l, "h1"); !strings.Contains(out, "Ready: no") || !strings.Contains(out, `overlay: IP pool "overlay" asks for ipipMode Always`) {
		t.Errorf("servalctl node status does not say why h1 is not ready:\n%s", out)
	}
	setMode(t, l, "Always")
	reachAll(t, l, "back to Always, every workload is reached again")
	for h, pid := range pids {
		if now := l.AgentPID(h); now != pid {
			t.Errorf("serval-node on %s restarted (pid %d -> %d)", h, pid, now)
		}
	}
}

// TestVXLANJumbo: a fabric of MTU 9000; workloads get 8950 and the
// largest DF ping and a bulk TCP transfer cross the tunnel.
func TestVXLANJumbo(t *testing.T) {
	l := upLab(t, "j", topology(9000))
	reachAll(t, l, "VXLAN Always reaches every workload")
	checkMTU(t, l, 9000-overlay.OverheadV4)

	// The uplink's MTU changes: the device and the MTU file new workloads
	// read follow, with the same agent.
	pid := l.AgentPID("h1")
	mustSh(t, l.Netns("h1"), "ip", "link", "set", "eth0", "mtu", "8000")
	eventually(t, 30*time.Second, "h1 follows its uplink's new MTU", func() error {
		f, err := overlay.ReadMTUFile(lab.MTUFile(l.AgentSocket("h1")))
		if err != nil || f != 8000-overlay.OverheadV4 {
			return fmt.Errorf("MTU file: %d, %v", f, err)
		}
		if out := mustSh(t, l.Netns("h1"), "ip", "link", "show", overlay.DeviceV4); !strings.Contains(out, fmt.Sprintf("mtu %d ", 8000-overlay.OverheadV4)) {
			return fmt.Errorf("device:\n%s", out)
		}
		return nil
	})
	if now := l.AgentPID("h1"); now != pid {
		t.Errorf("serval-node on h1 restarted (pid %d -> %d)", pid, now)
	}
}

// checkMTU: the workload's MTU is want; a DF ping of want-28 bytes of
// payload crosses the tunnel (w1 on h1 to w3 on h3) and one byte more
// does not; 16 MiB of TCP cross it.
func checkMTU(t *testing.T, l *lab.Lab, want int) {
	t.Helper()
	out := mustSh(t, l.Netns("w1"), "ip", "-o", "link", "show", "eth0")
	if !strings.Contains(out, fmt.Sprintf(" mtu %d ", want)) {
		t.Errorf("w1's eth0: want mtu %d:\n%s", want, out)
	}
	w3 := wip(t, l, "w3").String()
	if out, err := sh(t, l.Netns("w1"), "ping", "-c", "2", "-W", "2", "-M", "do", "-s", strconv.Itoa(want-28), w3); err != nil {
		t.Errorf("largest DF ping (%d bytes) w1 -> w3: %v\n%s", want-28, err, out)
	}
	if _, err := sh(t, l.Netns("w1"), "ping", "-c", "1", "-W", "1", "-M", "do", "-s", strconv.Itoa(want-27), w3); err == nil {
		t.Errorf("a DF ping of %d bytes went through an MTU of %d", want-27, want)
	}
	bulkTCP(t, l, "w1", "w3", 16<<20)
}

// bulkTCP sends n bytes from workload from to workload to over TCP.
func bulkTCP(t *testing.T, l *lab.Lab, from, to string, n int64) {
	t.Helper()
	bulkTCPTo(t, l, from, to, wip(t, l, to).String(), n)
}

// bulkTCP6 sends 16 MiB from workload from to workload to's IPv6 address.
func bulkTCP6(t *testing.T, l *lab.Lab, from, to, addr string) {
	t.Helper()
	bulkTCPTo(t, l, from, to, addr, 16<<20)
}

func bulkTCPTo(t *testing.T, l *lab.Lab, from, to, addr string, n int64) {
	t.Helper()
	var ln net.Listener
	if err := lab.InNetns(l.Netns(to), func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "5201"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		m, _ := io.Copy(io.Discard, c)
		got <- m
	}()
	var c net.Conn
	if err := lab.InNetns(l.Netns(from), func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(addr, "5201"), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("bulk TCP %s -> %s: %v", from, to, err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	sent, err := io.CopyN(c, zeros{}, n)
	c.Close()
	if err != nil {
		t.Fatalf("bulk TCP %s -> %s: sent %d of %d: %v", from, to, sent, n, err)
	}
	select {
	case m := <-got:
		if m != n {
			t.Fatalf("bulk TCP %s -> %s: received %d of %d bytes", from, to, m, n)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("bulk TCP %s -> %s: the receiver did not finish", from, to)
	}
	t.Logf("bulk TCP %s -> %s: %d MiB in %s", from, to, n>>20, time.Since(start).Round(time.Millisecond))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// checkGuard: w1 sends crafted VXLAN to its host's port 4789 (an ICMP echo
// to w1 from a made-up source, in a frame to h1's tunnel MAC): the guard
// drops it and the tunnel device receives nothing.
func checkGuard(t *testing.T, l *lab.Lab) {
	t.Helper()
	macOut := mustSh(t, l.Netns("h1"), "cat", "/sys/class/net/"+overlay.DeviceV4+"/address")
	mac, err := net.ParseMAC(strings.TrimSpace(macOut))
	if err != nil {
		t.Fatal(err)
	}
	pkt := vxlanPacket(mac, netip.MustParseAddr("10.244.250.1"), wip(t, l, "w1"))
	rxBefore := counter(t, l, "h1", overlay.DeviceV4, "rx_packets")
	dropsBefore := guardDrops(t, l, "h1")
	if err := lab.InNetns(l.Netns("w1"), func() error {
		c, err := net.Dial("udp", "172.31.1.11:4789")
		if err != nil {
			return err
		}
		defer c.Close()
		for range 5 {
			if _, err := c.Write(pkt); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("sending crafted VXLAN from w1: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if rx := counter(t, l, "h1", overlay.DeviceV4, "rx_packets"); rx != rxBefore {
		t.Errorf("crafted VXLAN from a workload reached %s (rx %d -> %d)", overlay.DeviceV4, rxBefore, rx)
	}
	if d := guardDrops(t, l, "h1"); d < dropsBefore+5 {
		t.Errorf("the guard counted %d -> %d drops, want 5 more", dropsBefore, d)
	}
}

// guardDrops sums the packet counters of the guard's drop rules on host.
func guardDrops(t *testing.T, l *lab.Lab, host string) int {
	t.Helper()
	out := mustSh(t, l.Netns(host), "nft", "list", "table", "inet", overlay.GuardTable)
	total := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "packets" {
				n, _ := strconv.Atoi(f[i+1])
				total += n
			}
		}
	}
	return total
}

// vxlanPacket is a VXLAN payload (VNI 4096) carrying an Ethernet frame to
// dst MAC with an ICMP echo request from src to to.
func vxlanPacket(dst net.HardwareAddr, src, to netip.Addr) []byte {
	b := []byte{0x08, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], overlay.DefaultVNI<<8)
	b = append(b, dst...)
	b = append(b, 0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00)
	icmp := []byte{8, 0, 0, 0, 0, 1, 0, 1}
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	ip := []byte{0x45, 0, 0, byte(20 + len(icmp)), 0, 0, 0x40, 0, 64, 1, 0, 0}
	ip = append(ip, src.AsSlice()...)
	ip = append(ip, to.AsSlice()...)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	return append(append(b, ip...), icmp...)
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// checkNATOutgoing: from the natOutgoing overlay pool to an address
// outside every pool (the router), a connection arrives from the host's
// address.
func checkNATOutgoing(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, c := range []struct{ w, router, host string }{{"w1", "172.31.1.1", "172.31.1.11"}, {"w3", "172.31.2.1", "172.31.2.13"}} {
		var ln net.Listener
		if err := lab.InNetns(l.Netns("router"), func() (err error) {
			ln, err = net.Listen("tcp", net.JoinHostPort(c.router, "5202"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		from := make(chan string, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				from <- err.Error()
				return
			}
			from <- conn.RemoteAddr().(*net.TCPAddr).IP.String()
			conn.Close()
		}()
		if err := lab.InNetns(l.Netns(c.w), func() error {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.router, "5202"), 5*time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		}); err != nil {
			t.Errorf("natOutgoing: %s -> router %s: %v", c.w, c.router, err)
			ln.Close()
			continue
		}
		if got := <-from; got != c.host {
			t.Errorf("natOutgoing: %s's connection to %s came from %s, want its host's %s", c.w, c.router, got, c.host)
		}
		ln.Close()
	}
}

// checkPolicy: a policy gives over the tunnel the answers it gives routed:
// w3 (app=db) admits w2 and not w1 (role=untrusted), the other way round
// nothing changes.
func checkPolicy(t *testing.T, l *lab.Lab) {
	t.Helper()
	pol := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: db-refuses-untrusted
spec:
  order: 10
  selector: app == 'db'
  ingress:
    - action: Deny
      source:
        selector: role == 'untrusted'
`
	ctx := context.Background()
	if out, err := l.Servalctl(ctx, []byte(pol), "apply", "-f", "-"); err != nil {
		t.Fatalf("applying the policy: %v\n%s", err, out)
	}
	want := map[[2]string]bool{{"w1", "w3"}: false, {"w2", "w3"}: true, {"w3", "w1"}: true, {"w3", "w2"}: true, {"w1", "w2"}: true}
	eventually(t, 30*time.Second, "the policy holds over the tunnel", func() error {
		for p, ok := range want {
			if got := probe(t, l, p[0], p[1]); got != ok {
				return fmt.Errorf("%s -> %s: allowed %t, want %t", p[0], p[1], got, ok)
			}
		}
		return nil
	})
	if out, err := l.Servalctl(ctx, nil, "delete", "globalnetworkpolicy", "db-refuses-untrusted"); err != nil {
		t.Fatalf("deleting the policy: %v\n%s", err, out)
	}
	reachAll(t, l, "without the policy, everything is reached again")
}
