package reliability

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// udpReaches sends one UDP datagram from src (an address of namespace
// fromNS; "" for the kernel's choice) to dst:port, where a socket opened
// in toNS listens, and reports whether it arrived. UDP, because a spoofed
// sender never sees an answer: only the receiver can tell.
func udpReaches(t *testing.T, fromNS, toNS, src string, dst netip.Addr, port int) bool {
	t.Helper()
	var pc net.PacketConn
	if err := lab.InNetns(toNS, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", toNS, err)
	}
	defer pc.Close()
	payload := []byte("serval-spoof-" + src)
	if err := lab.InNetns(fromNS, func() error {
		var laddr *net.UDPAddr
		if src != "" {
			laddr = &net.UDPAddr{IP: net.ParseIP(src)}
		}
		c, err := net.DialUDP("udp4", laddr, &net.UDPAddr{IP: dst.AsSlice(), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		for range 3 {
			if _, err := c.Write(payload); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("sending from %s in %s: %v", src, fromNS, err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 128)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			t.Fatal(err)
		}
		if string(buf[:n]) == string(payload) {
			return true
		}
	}
}

// TestIsolation checks what a workload must never do, on two hosts
// peering with a BIRD top-of-rack router:
//   - a workload (Z) with no profile and no policy reaches nothing and is
//     reached by nothing;
//   - a workload sending from an address that is not its own (unused, or
//     another workload's) is dropped;
//   - a workload cannot reach its host's services (BGP on 179, and a
//     listener standing for etcd's client port) while
//     defaultEndpointToHostAction is Drop, and can once it is Accept;
//   - a BGP peer whose password differs never establishes, and the
//     password appears in no log.
func TestIsolation(t *testing.T) {
	needRoot(t)
	needBinary(t, "bird")
	// Every agent reads BGP passwords from this directory (serval-node
	// --secrets-dir, from the environment the lab passes down).
	secrets := t.TempDir()
	const bgpPassword = "s3rval-bgp-Pa55word"
	if err := os.MkdirAll(filepath.Join(secrets, "bgp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "bgp", "tor"), []byte(bgpPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SERVAL_SECRETS_DIR", secrets)
	l := upLab(t, "sec", `
router: {kind: bird, asNumber: 64513, address: 10.93.0.1/24}
hosts:
  - {name: h1, address: 10.93.0.11/24}
  - {name: h2, address: 10.93.0.12/24}
workloads:
  - {name: A, host: h1, labels: {app: a}, profiles: [open]}
  - {name: B, host: h1, labels: {app: b}, profiles: [open]}
  - {name: Z, host: h1, labels: {app: noprofile}}
  - {name: C, host: h2, labels: {app: c}, profiles: [open]}
`, map[string]string{"open.yaml": openProfile})
	ctx := context.Background()

	t.Run("no profile no policy", func(t *testing.T) {
		wantReach(t, l, "A", "C", icmp, true, "control: both open")
		for _, p := range [][2]string{{"Z", "A"}, {"Z", "C"}, {"A", "Z"}, {"C", "Z"}, {"Z", "h1"}, {"h2", "Z"}} {
			for _, spec := range []lab.ProbeSpec{icmp, tcp(80)} {
				if probe(t, l, p[0], p[1], spec) {
					t.Errorf("%s -> %s (%s) allowed: Z has no profile and no policy", p[0], p[1], spec)
				}
			}
		}
	})

	t.Run("anti-spoofing", func(t *testing.T) {
		aIP, bIP, cIP := workloadIP(t, l, "A"), workloadIP(t, l, "B"), workloadIP(t, l, "C")
		b := netip.MustParseAddr(bIP)
		if !udpReaches(t, l.Netns("A"), l.Netns("B"), aIP, b, 7001) {
			t.Fatal("control: A's datagram from its own address did not reach B")
		}
		// The attacker owns its namespace: it may give itself any address.
		for _, spoof := range []string{"192.168.250.250", cIP} {
			if _, err := nsExec(ctx, l.Netns("A"), "ip", "addr", "add", spoof+"/32", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
			if udpReaches(t, l.Netns("A"), l.Netns("B"), spoof, b, 7001) {
				t.Errorf("A sending as %s reached B: the source address is not A's (%s)", spoof, aIP)
			}
			if _, err := nsExec(ctx, l.Netns("A"), "ip", "addr", "del", spoof+"/32", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
		// Its own address from another MAC: the CNI plugin recorded A's MAC
		// in its WorkloadEndpoint, and only that MAC may send.
		mac, err := nsExec(ctx, l.Netns("A"), "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		own := strings.TrimSpace(string(mac))
		if _, err := nsExec(ctx, l.Netns("A"), "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"); err != nil {
			t.Fatal(err)
		}
		if udpReaches(t, l.Netns("A"), l.Netns("B"), aIP, b, 7001) {
			t.Errorf("A sending from MAC 02:00:00:00:00:99 (its own is %s) reached B", own)
		}
		if _, err := nsExec(ctx, l.Netns("A"), "ip", "link", "set", "eth0", "address", own); err != nil {
			t.Fatal(err)
		}
		if !udpReaches(t, l.Netns("A"), l.Netns("B"), aIP, b, 7001) {
			t.Error("A's datagram from its own MAC and address no longer reaches B")
		}
	})

	t.Run("host services", func(t *testing.T) {
		// BGP: h1's speaker listens on 179; h2 (a peer) reaches it, A must not.
		if !probe(t, l, "h2", "h1", lab.ProbeSpec{Proto: "tcp", Port: 179, Timeout: time.Second, NoListener: true}) {
			t.Fatal("control: h2 cannot reach h1's BGP port")
		}
		bgp := lab.ProbeSpec{Proto: "tcp", Port: 179, Timeout: time.Second, NoListener: true}
		hostPorts := []lab.ProbeSpec{bgp, tcp(2379), tcp(9099), tcp(9091)}
		for _, spec := range hostPorts {
			if probe(t, l, "A", "h1", spec) {
				t.Errorf("A reached its host h1 on %s with defaultEndpointToHostAction Drop", spec)
			}
		}
		// The agent's health and metrics stay on the host's loopback.
		for _, port := range []int{9099, 9091} {
			out, _ := nsExec(ctx, l.Netns("h1"), "ss", "-Hltn", "sport = :"+itoa(port))
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if f := strings.Fields(line); len(f) >= 4 && !strings.HasPrefix(f[3], "127.0.0.1:") && !strings.HasPrefix(f[3], "[::1]:") {
					t.Errorf("serval-node listens on %s, beyond loopback", f[3])
				}
			}
		}
		accept := "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {defaultEndpointToHostAction: Accept}\n"
		if out, err := l.Servalctl(ctx, []byte(accept), "apply", "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantReach(t, l, "A", "h1", tcp(2379), true, "defaultEndpointToHostAction Accept and A's profile allows egress")
		wantReach(t, l, "A", "h1", bgp, true, "defaultEndpointToHostAction Accept")
		drop := strings.Replace(accept, "Accept", "Drop", 1)
		if out, err := l.Servalctl(ctx, []byte(drop), "apply", "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		wantReach(t, l, "A", "h1", tcp(2379), false, "defaultEndpointToHostAction back to Drop")
	})

	t.Run("BGP password", func(t *testing.T) {
		// The router has no password for h1; h1 is given one.
		peer := `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: lab-tor}
spec:
  peerIP: 10.93.0.1
  asNumber: 64513
  password: {secretKeyRef: {name: bgp, key: tor}}
`
		if out, err := l.Servalctl(ctx, []byte(peer), "apply", "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// BIRD retries every 5 s: give it three tries.
		var established []string
		deadline := time.Now().Add(16 * time.Second)
		seenDown := false
		for time.Now().Before(deadline) {
			out, _ := l.Birdc(ctx, "show", "protocols")
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) >= 6 && f[1] == "BGP" {
					if f[5] == "Established" {
						if seenDown {
							established = append(established, line)
						}
					} else {
						seenDown = true
					}
				}
			}
			time.Sleep(time.Second)
		}
		if !seenDown {
			t.Errorf("the router's sessions never went down after a password only one side knows was set")
		}
		if len(established) > 0 {
			t.Errorf("a BGP session came up again though the password differs:\n%s", strings.Join(established, "\n"))
		}
	})

	t.Run("no secret in logs", func(t *testing.T) {
		logs, _ := filepath.Glob(filepath.Join(l.Dir, "logs", "*.log"))
		if len(logs) == 0 {
			t.Fatal("no logs found")
		}
		for _, p := range logs {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), bgpPassword) {
				t.Errorf("%s contains the BGP password", p)
			}
		}
	})
}
