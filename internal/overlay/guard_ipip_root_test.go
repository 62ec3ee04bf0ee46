package overlay

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// sendIPIP sends one IPIP packet (IP protocol 4, an inner IPv4 header
// and a few bytes) from namespace ns to dst, as a workload could.
const sendIPIP = `
import socket, struct, sys
inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0,
    socket.inet_aton("10.99.0.2"), socket.inet_aton("10.99.0.1")) + b"\0" * 8
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
s.sendto(inner, (sys.argv[1], 0))
`

// TestGuardDropsIPIPFromWorkloads: with IPIP in use, an IPIP packet a
// workload sends to its host is dropped by the guard (Calico's
// allowIPIPPacketsFromWorkloads false), and counted there.
func TestGuardDropsIPIPFromWorkloads(t *testing.T) {
	names, _ := twoHosts(t)
	// names[0] plays the workload, names[1] its host; cali0 is the
	// workload's interface on the host.
	run(t, "", "ip", "link", "add", "wl0", "netns", names[0], "type", "veth", "peer", "cali0", "netns", names[1])
	run(t, names[0], "ip", "addr", "add", "10.99.0.2/24", "dev", "wl0")
	run(t, names[0], "ip", "link", "set", "wl0", "up")
	run(t, names[1], "ip", "addr", "add", "10.99.0.1/24", "dev", "cali0")
	run(t, names[1], "ip", "link", "set", "cali0", "up")
	h, err := netns.GetFromName(names[1])
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	g := GuardOf(Desired{Devices: []Device{{Name: DeviceIPIP, IPIP: true, MTU: 1480}}}, "cali")
	if !g.IPIP || g.Port != 0 {
		t.Fatalf("GuardOf an IPIP device: %+v, want IPIP and no VXLAN port", g)
	}
	if err := ApplyGuard(c, g); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if out, err := exec.Command("ip", "netns", "exec", names[0], "python3", "-c", sendIPIP, "10.99.0.1").CombinedOutput(); err != nil {
			t.Fatalf("sending IPIP from the workload: %v\n%s", err, out)
		}
	}
	table := run(t, names[1], "nft", "list", "table", "inet", GuardTable)
	re := regexp.MustCompile(`(?m)^\s*meta l4proto \S+ iifname "cali\*" counter packets (\d+) .*drop$`)
	ms := re.FindAllStringSubmatch(table, -1)
	if len(ms) != 2 {
		t.Fatalf("want the IPIP drop in input and forward:\n%s", table)
	}
	if ms[0][1] != "3" {
		t.Errorf("input IPIP drop counted %s packets, want 3:\n%s", ms[0][1], table)
	}
	if strings.Contains(table, "udp dport") {
		t.Errorf("IPIP only: no VXLAN rules expected:\n%s", table)
	}
	// No overlay device: the table goes.
	if err := ApplyGuard(c, GuardOf(Desired{}, "cali")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", names[1], "nft", "list", "table", "inet", GuardTable).CombinedOutput(); err == nil {
		t.Fatalf("guard table left after removal:\n%s", out)
	}
}
