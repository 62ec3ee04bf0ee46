package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"

	"github.com/servalnet/serval/bench/internal/report"
)

// The reference dataplanes the dataplane part measures Serval against, each
// built by hand in throwaway network namespaces and measured with the same
// iperf3 and ping commands as Serval's path. They are the project's own
// yardstick: what two hosts joined by one wire can do at all, what a plain
// layer-3 route costs on top, what the overlay model costs, and what
// conntrack alone costs.
//
//	direct           two workloads on one veth pair: the ceiling of the machine
//	routed           what Serval programs, and nothing else: two hosts on one
//	                 veth wire, a workload behind each on a veth with a /32
//	                 address, a /32 route and proxy ARP on the host side, the
//	                 other host's block routed via the wire
//	vxlan            the overlay model: a bridge per host, a VXLAN tunnel
//	                 over the wire between the bridges, workloads on one /24
//	                 with the tunnel's smaller MTU
//	routed_conntrack routed plus, on both hosts, one nftables forward chain
//	                 accepting established packets: conntrack then tracks
//	                 every packet, as under any stateful firewall (Serval's
//	                 table, Calico's iptables), so Serval/routed_conntrack
//	                 separates what conntrack costs from what Serval's own
//	                 chains cost
//	vxlan_conntrack  vxlan plus the same nftables chain on both hosts: an
//	                 overlay behind a stateful firewall pays conntrack too.
//	                 The chain is in the forward hook, but its ct
//	                 expression makes the kernel track every IPv4/IPv6
//	                 packet of the host namespace: the tunnel's UDP
//	                 packets as they leave and arrive, and, where
//	                 br_netfilter is loaded (bridge-nf-call-iptables 1,
//	                 as on the development machine), the workloads'
//	                 bridged packets too. routed_conntrack against
//	                 vxlan_conntrack is what routing instead of
//	                 encapsulating is worth with policy on both sides
var referenceKinds = []string{"direct", "routed", "vxlan", "routed_conntrack", "vxlan_conntrack"}

// Addresses of the references. They live only in the references' own
// namespaces, so they cannot meet the lab's or the machine's.
const (
	refWireNet   = "172.31.255." // the hosts' wire, a /24
	refBlockNet  = "10.250."     // workload blocks: 10.250.<host>.0/26
	refFlatNet   = "10.250.9."   // the overlay's one workload /24
	refGateway   = "169.254.1.1" // the workloads' next hop, answered by proxy ARP
	refVXLANMTU  = "1450"        // 1500 less VXLAN's 50 bytes of headers
	refVNI       = "42"          // any VNI: the tunnel is alone on its wire
	refVXPort    = "4789"        // the IANA VXLAN port
	refDirectNet = "10.250.1."   // the direct pair's /24
)

// refPlan is how to build one reference: the namespaces it creates (all
// deleted afterwards), the commands that wire them, in order, and where
// to measure: the client's and the server's namespaces and the server's
// address.
type refPlan struct {
	namespaces     []string
	cmds           [][]string
	client, server string
	serverIP       string
}

// referencePlan returns the plan for kind, its namespaces named with
// prefix (unique on the machine). It runs nothing.
func referencePlan(kind, prefix string) (refPlan, error) {
	hA, hB, wA, wB := prefix+"hA", prefix+"hB", prefix+"wA", prefix+"wB"
	p := refPlan{client: wA, server: wB}
	var cmds [][]string
	add := func(c ...string) { cmds = append(cmds, c) }
	in := func(ns string, c ...string) { add(append([]string{"ip", "-n", ns}, c...)...) }
	sysctl := func(ns, kv string) { add("ip", "netns", "exec", ns, "sysctl", "-qw", kv) }
	newNS := func(names ...string) {
		for _, n := range names {
			p.namespaces = append(p.namespaces, n)
			add("ip", "netns", "add", n)
			in(n, "link", "set", "lo", "up")
		}
	}
	// hosts: two host namespaces on one veth wire, forwarding, each
	// host's default route the other (a real host's uplink is its default
	// route, and proxy ARP answers only for addresses it can route).
	hosts := func() {
		newNS(hA, hB, wA, wB)
		add("ip", "link", "add", "wire", "netns", hA, "type", "veth", "peer", "name", "wire", "netns", hB)
		for i, h := range []string{hA, hB} {
			in(h, "addr", "add", fmt.Sprintf("%s%d/24", refWireNet, i+1), "dev", "wire")
			in(h, "link", "set", "wire", "up")
			sysctl(h, "net.ipv4.ip_forward=1")
			in(h, "route", "add", "default", "via", fmt.Sprintf("%s%d", refWireNet, 2-i))
		}
	}
	switch kind {
	case "direct":
		newNS(wA, wB)
		add("ip", "link", "add", "eth0", "netns", wA, "type", "veth", "peer", "name", "eth0", "netns", wB)
		for i, w := range []string{wA, wB} {
			in(w, "addr", "add", fmt.Sprintf("%s%d/24", refDirectNet, i+1), "dev", "eth0")
			in(w, "link", "set", "eth0", "up")
		}
		p.serverIP = refDirectNet + "2"
	case "routed", "routed_conntrack":
		hosts()
		for i, side := range []struct{ h, w string }{{hA, wA}, {hB, wB}} {
			n := i + 1
			ip := fmt.Sprintf("%s%d.%d", refBlockNet, n, n)
			add("ip", "link", "add", "cali0", "netns", side.h, "type", "veth", "peer", "name", "eth0", "netns", side.w)
			in(side.w, "addr", "add", ip+"/32", "dev", "eth0")
			in(side.w, "link", "set", "eth0", "up")
			in(side.w, "route", "add", refGateway, "dev", "eth0")
			in(side.w, "route", "add", "default", "via", refGateway, "dev", "eth0")
			in(side.h, "link", "set", "cali0", "up")
			sysctl(side.h, "net.ipv4.conf.cali0.proxy_arp=1")
			in(side.h, "route", "add", ip+"/32", "dev", "cali0", "scope", "link")
			// the other host's block, via the wire
			in(side.h, "route", "add", fmt.Sprintf("%s%d.0/26", refBlockNet, 3-n), "via", fmt.Sprintf("%s%d", refWireNet, 3-n))
			if n == 2 {
				p.serverIP = ip
			}
		}
		if kind == "routed_conntrack" {
			for _, h := range []string{hA, hB} {
				add("ip", "netns", "exec", h, "nft", ctOnlyRules)
			}
		}
	case "vxlan", "vxlan_conntrack":
		hosts()
		for i, side := range []struct{ h, w string }{{hA, wA}, {hB, wB}} {
			me, peer := fmt.Sprintf("%s%d", refWireNet, i+1), fmt.Sprintf("%s%d", refWireNet, 2-i)
			in(side.h, "link", "add", "br0", "type", "bridge")
			in(side.h, "link", "set", "br0", "up")
			in(side.h, "link", "add", "vx0", "type", "vxlan", "id", refVNI, "dstport", refVXPort, "local", me, "remote", peer, "dev", "wire")
			in(side.h, "link", "set", "vx0", "master", "br0")
			in(side.h, "link", "set", "vx0", "up")
			add("ip", "link", "add", "veth0", "netns", side.h, "type", "veth", "peer", "name", "eth0", "netns", side.w)
			in(side.h, "link", "set", "veth0", "master", "br0")
			in(side.h, "link", "set", "veth0", "up")
			in(side.w, "addr", "add", fmt.Sprintf("%s%d/24", refFlatNet, i+1), "dev", "eth0")
			in(side.w, "link", "set", "eth0", "mtu", refVXLANMTU, "up")
		}
		p.serverIP = refFlatNet + "2"
		if kind == "vxlan_conntrack" {
			for _, h := range []string{hA, hB} {
				add("ip", "netns", "exec", h, "nft", ctOnlyRules)
			}
		}
	default:
		return refPlan{}, fmt.Errorf("unknown reference dataplane %q (known: %s)", kind, strings.Join(referenceKinds, ", "))
	}
	p.cmds = cmds
	return p, nil
}

// ctOnlyRules is the whole firewall of the routed_conntrack and
// vxlan_conntrack references:
// established packets accepted at the first rule, as Serval's forward
// chain does, and nothing else.
const ctOnlyRules = "add table inet bench; add chain inet bench forward { type filter hook forward priority filter; policy accept; }; add rule inet bench forward ct state established,related accept"

// reference builds kind, measures it (iperf3 throughput in Gbit/s, ping
// RTT in ms) and removes it. With record, the report gets the set-up and
// the measuring commands.
func (s *Suite) reference(ctx context.Context, part, kind string, record bool) (gbps, rtt float64, err error) {
	p, err := referencePlan(kind, labName("rf"))
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		for _, n := range p.namespaces {
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
	}()
	if record {
		s.Report.Command(part, fmt.Sprintf("servalbench reference --print %s   # the %d commands that build the %s reference (bench/internal/runner/reference.go); then iperf3 and ping as below", kind, len(p.cmds), kind))
	}
	for _, c := range p.cmds {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("building the %s reference: %s: %w: %s", kind, strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if gbps, err = s.iperf(ctx, part, record, p.server, p.client, p.serverIP); err != nil {
		return 0, 0, fmt.Errorf("iperf3 through the %s reference: %w", kind, err)
	}
	if rtt, err = s.ping(ctx, part, record, p.client, p.serverIP); err != nil {
		return gbps, 0, fmt.Errorf("ping through the %s reference: %w", kind, err)
	}
	return gbps, rtt, nil
}

// ReferenceKinds are the reference dataplanes, in the order a round
// measures them.
func ReferenceKinds() []string { return append([]string(nil), referenceKinds...) }

// PrintReference writes the commands that build kind, one a line, as a
// shell script would run them (namespaces named "ref" plus hA, hB, wA,
// wB). It runs nothing.
func PrintReference(w io.Writer, kind string) error {
	p, err := referencePlan(kind, "ref")
	if err != nil {
		return err
	}
	for _, c := range p.cmds {
		if _, err := fmt.Fprintln(w, shellJoin(c)); err != nil {
			return err
		}
	}
	return nil
}

// RunReference builds, measures and removes each kind in turn (root),
// writing one line per kind to w: "<kind> gbps=<iperf3> rtt_ms=<ping>".
func RunReference(ctx context.Context, kinds []string, w io.Writer) error {
	s := &Suite{Root: ".", Report: report.New(report.Machine{}), Log: slog.New(slog.DiscardHandler)}
	for _, kind := range kinds {
		gbps, rtt, err := s.reference(ctx, "", kind, false)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s gbps=%.2f rtt_ms=%.3f\n", kind, gbps, rtt)
	}
	return nil
}
