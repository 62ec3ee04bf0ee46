package runner

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// routedConntrack is a fourth reference, built here because the shared
// baseline script cleans its namespaces up as it exits: the script's
// `routed` dataplane exactly (two host namespaces on one veth wire, a
// workload behind each on a veth with a /32 route and proxy ARP, the
// other host's /26 via the wire) plus, on both hosts, one nftables forward
// chain accepting established packets. That rule makes conntrack track
// every packet, as any stateful firewall does (Serval's table, Calico's
// iptables), so Serval/routed_conntrack separates what conntrack costs
// from what Serval's own chains cost. It returns Gbit/s and the ping RTT
// in ms, measured with the same iperf3 and ping commands.
func (s *Suite) routedConntrack(ctx context.Context, part string, record bool) (gbps, rtt float64, err error) {
	p := labName("rc") // unique on the machine
	hA, hB, wA, wB := p+"hA", p+"hB", p+"wA", p+"wB"
	defer func() {
		for _, n := range []string{hA, hB, wA, wB} {
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
	}()
	cmds := [][]string{}
	for _, n := range []string{hA, hB, wA, wB} {
		cmds = append(cmds, []string{"ip", "netns", "add", n}, []string{"ip", "-n", n, "link", "set", "lo", "up"})
	}
	cmds = append(cmds,
		[]string{"ip", "link", "add", "wire", "netns", hA, "type", "veth", "peer", "name", "wire", "netns", hB},
		[]string{"ip", "-n", hA, "addr", "add", "172.31.255.1/24", "dev", "wire"},
		[]string{"ip", "-n", hB, "addr", "add", "172.31.255.2/24", "dev", "wire"},
		[]string{"ip", "-n", hA, "link", "set", "wire", "up"},
		[]string{"ip", "-n", hB, "link", "set", "wire", "up"},
		[]string{"ip", "netns", "exec", hA, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		[]string{"ip", "netns", "exec", hB, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		[]string{"ip", "-n", hA, "route", "add", "default", "via", "172.31.255.2"},
		[]string{"ip", "-n", hB, "route", "add", "default", "via", "172.31.255.1"},
	)
	for _, side := range []struct{ h, w, addr string }{{hA, wA, "10.250.1.1"}, {hB, wB, "10.250.2.2"}} {
		cmds = append(cmds,
			[]string{"ip", "link", "add", "cali0", "netns", side.h, "type", "veth", "peer", "name", "eth0", "netns", side.w},
			[]string{"ip", "-n", side.w, "addr", "add", side.addr + "/32", "dev", "eth0"},
			[]string{"ip", "-n", side.w, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", side.w, "route", "add", "169.254.1.1", "dev", "eth0"},
			[]string{"ip", "-n", side.w, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
			[]string{"ip", "-n", side.h, "link", "set", "cali0", "up"},
			[]string{"ip", "netns", "exec", side.h, "sysctl", "-qw", "net.ipv4.conf.cali0.proxy_arp=1"},
			[]string{"ip", "-n", side.h, "route", "add", side.addr + "/32", "dev", "cali0", "scope", "link"},
		)
	}
	cmds = append(cmds,
		[]string{"ip", "-n", hA, "route", "add", "10.250.2.0/26", "via", "172.31.255.2"},
		[]string{"ip", "-n", hB, "route", "add", "10.250.1.0/26", "via", "172.31.255.1"},
	)
	for _, h := range []string{hA, hB} {
		cmds = append(cmds, []string{"ip", "netns", "exec", h, "nft", ctOnlyRules})
	}
	for _, c := range cmds {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("building the routed+conntrack reference: %s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if record {
		s.Report.Command(part, "# routed+conntrack: the script's routed set-up, then on both hosts: nft '"+ctOnlyRules+"'")
	}
	if gbps, err = s.iperf(ctx, part, false, wB, wA, "10.250.2.2"); err != nil {
		return 0, 0, err
	}
	rtt, err = s.ping(ctx, part, false, wA, "10.250.2.2")
	if err != nil {
		return gbps, 0, fmt.Errorf("ping through the routed+conntrack reference: %w", err)
	}
	return gbps, rtt, nil
}

// ctOnlyRules is the whole firewall of the routed+conntrack reference:
// established packets accepted at the first rule, as Serval's forward
// chain does, and nothing else.
const ctOnlyRules = "add table inet bench; add chain inet bench forward { type filter hook forward priority filter; policy accept; }; add rule inet bench forward ct state established,related accept"
