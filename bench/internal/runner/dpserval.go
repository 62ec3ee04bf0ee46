package runner

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
	"github.com/servalnet/serval/internal/lab"
)

// servalPath is one Serval lab of the dataplane part, measured in every
// round beside the references: the same 2-host `fabric: wire` topology,
// its IP pool routed natively, encapsulated (vxlanMode Always) or
// CrossSubnet (the two hosts share a subnet, so it routes natively).
type servalPath struct {
	name      string // figure prefix: serval, serval_vxlan, serval_crosssubnet
	vxlanMode string // the pool's vxlanMode
	lab       *lab.Lab
	cleanup   func()
	// client and server workload namespaces, the server's address
	nsA, nsB, ip string
	mtu          string // workload A's eth0 MTU, for the notes
}

// servalPaths are the Serval labs a dataplane run brings up.
func servalPaths() []*servalPath {
	return []*servalPath{
		{name: "serval", vxlanMode: "Never"},
		{name: "serval_vxlan", vxlanMode: "Always"},
		{name: "serval_crosssubnet", vxlanMode: "CrossSubnet"},
	}
}

// dpPool is the lab's IP pool: the lab's default pool (Calico's) with the
// path's vxlanMode.
const dpPool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: %s
  natOutgoing: true
`

// up brings p's lab up and checks that A reaches B and that host1's
// route to B is the mode's: through vxlan.serval for Always, natively
// for Never and CrossSubnet (a figure of the wrong path would compare
// nothing).
func (p *servalPath) up(ctx context.Context, s *Suite, part string) error {
	name := labName("dp")
	l, cleanup, err := s.labUp(ctx, part, fmt.Sprintf(dpTopology, name), map[string]string{
		"allow.yaml": dpPolicy,
		"pool.yaml":  fmt.Sprintf(dpPool, p.vxlanMode),
	})
	if err != nil {
		return fmt.Errorf("%s lab (vxlanMode %s): %w", p.name, p.vxlanMode, err)
	}
	p.lab, p.cleanup = l, cleanup
	b, err := l.Resolve("B")
	if err != nil {
		return err
	}
	p.nsA, p.nsB, p.ip = l.Netns("A"), l.Netns("B"), b.IP.String()
	wantTunnel := p.vxlanMode == "Always"
	deadline := time.Now().Add(60 * time.Second)
	for {
		route, rerr := exec.CommandContext(ctx, "ip", "-n", l.Netns("host1"), "route", "get", p.ip).CombinedOutput()
		ok, perr := l.Probe(ctx, "A", "B", lab.ProbeSpec{Proto: "tcp", Port: 5201, Timeout: 3 * time.Second})
		tunnel := strings.Contains(string(route), "dev vxlan.serval")
		if rerr == nil && perr == nil && ok && tunnel == wantTunnel {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s lab (vxlanMode %s): A→B not reachable on the mode's path within 60 s (reached=%v, err=%v; host1's route to B: %s)",
				p.name, p.vxlanMode, ok, perr, strings.TrimSpace(string(route)))
		}
		time.Sleep(time.Second)
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", p.nsA, "cat", "/sys/class/net/eth0/mtu").Output(); err == nil {
		p.mtu = strings.TrimSpace(string(out))
	}
	return nil
}

// measure is one round's iperf3 and ping through p.
func (p *servalPath) measure(ctx context.Context, s *Suite, part string, round int, tput, rtts map[string][]float64) {
	first := round == 0
	if first {
		s.Report.Command(part, "# "+p.name+": the lab above with the pool's vxlanMode: "+p.vxlanMode)
	}
	if v, err := s.iperf(ctx, part, first, p.nsB, p.nsA, p.ip); err != nil {
		s.Report.Note(part, "%s iperf3, round %d: %v", p.name, round+1, err)
	} else {
		tput[p.name] = append(tput[p.name], v)
	}
	if r, err := s.ping(ctx, part, first, p.nsA, p.ip); err != nil {
		s.Report.Note(part, "%s ping, round %d: %v", p.name, round+1, err)
	} else {
		rtts[p.name] = append(rtts[p.name], r)
	}
}

// dpFigures records the dataplane part's throughput and RTT figures, their
// ratios and the issues' targets.
func (s *Suite) dpFigures(part string, paths []*servalPath, tput, rtts map[string][]float64) {
	names := append([]string(nil), referenceKinds...)
	for _, p := range paths {
		names = append(names, p.name)
	}
	for _, m := range names {
		s.Report.Add(report.Figure{Part: part, Name: m + ".tcp", Unit: "Gbit/s", Samples: tput[m], Stat: fmt.Sprintf("median of %d × %d s", len(tput[m]), iperfSecs)})
		s.Report.Add(report.Figure{Part: part, Name: m + ".rtt", Unit: "ms", Samples: rtts[m], Stat: fmt.Sprintf("median of %d × 20 pings", len(rtts[m]))})
	}
	mtus := []string{}
	for _, p := range paths {
		mtus = append(mtus, fmt.Sprintf("%s (vxlanMode %s): workload MTU %s", p.name, p.vxlanMode, p.mtu))
	}
	s.Report.Note(part, "references (bench/internal/runner/reference.go; `servalbench reference --print` shows how each is built): direct (two workloads on one veth pair), routed (2 hosts joined by one veth wire, a workload behind each with a /32 route and proxy ARP, the other host's block via the wire: Serval's model with nothing else), vxlan (a bridge per host and a VXLAN tunnel between them, MTU 1450), routed_conntrack and vxlan_conntrack (routed and vxlan plus, on both hosts, one nftables forward chain `ct state established,related accept`, so that conntrack tracks every packet as under any stateful firewall; in vxlan_conntrack the tunnel's UDP packets and, with br_netfilter loaded as here, the workloads' bridged packets); %d rounds of the five references then one run through each Serval lab, each iperf3 -t %d (5 s before issue 15, which added rounds and paths) and ping -c 20 -i 0.05 of the established path", iperfRuns, iperfSecs)
	s.Report.Note(part, "Serval: three 2-host labs with `fabric: wire` (the two host namespaces joined by one veth pair, as the routed reference's, nothing between them; no router; the datastore off the wire on a management link per host), a serval-node on each host peering by BGP over the wire, workloads A and B wired by serval-cni (MTU from serval-node's MTU file), one GlobalNetworkPolicy allowing bench == 'dp' to bench == 'dp', enforced by serval-node's nftables table; the IP pool's vxlanMode is Never in `serval` (the route to the other host's block is BGP's), Always in `serval_vxlan` (route via vxlan.serval, VNI 4096, port 4789, FDB and ARP entries from the datastore), CrossSubnet in `serval_crosssubnet` (both hosts on 172.31.250.0/24: native route, proto 81); each lab is checked before measuring to route A→B the way its mode says (via vxlan.serval or not); %s; same iperf3 and ping commands as the references", strings.Join(mtus, ", "))
	s.Report.Note(part, "what Serval's path has that the routed reference has not, per host: serval-node's nftables table, hence conntrack on every packet (the reference's namespaces have no rule, so no conntrack at all) and its chains: forward accepts established packets at its first rule; the raw and preDNAT chains are empty without host endpoint policy of those kinds; the NAT chain sees only a connection's first packet. The same otherwise: proxy ARP on the workload veth, /32 route per workload, rp_filter 0, MTU 1500, the kernel's default veth offloads. Over VXLAN, Serval routes each packet into vxlan.serval (the forward hook, so conntrack sees the workloads' packets) and the tunnel's UDP leaves and arrives through the host's stack (conntrack again, and serval-overlay's check of the sender on port 4789), where the vxlan reference bridges the frames (conntracked in vxlan_conntrack through br_netfilter, as the tunnel's UDP)")
	// ratio sets name's ratio to its first reference, to; vs adds name's
	// samples again as name_vs_<to> with the ratio to to (results.json
	// has one ratio per figure).
	ratio := func(name, to string) { s.Report.Ratio(name, to) }
	vs := func(name, to string) {
		f := s.Report.Get(name)
		if f == nil {
			return
		}
		toBase, _, _ := strings.Cut(to, ".")
		s.Report.Add(report.Figure{Part: part, Name: name + "_vs_" + toBase, Unit: f.Unit, Samples: f.Samples, Stat: f.Stat})
		s.Report.Ratio(name+"_vs_"+toBase, to)
	}
	for _, m := range []string{"tcp", "rtt"} {
		ratio("serval."+m, "routed."+m)
		ratio("routed_conntrack."+m, "routed."+m)
		ratio("vxlan_conntrack."+m, "vxlan."+m)
		// Serval against the reference that pays conntrack too: what
		// Serval's own chains cost beyond any stateful firewall.
		vs("serval."+m, "routed_conntrack."+m)
		ratio("serval_vxlan."+m, "vxlan."+m)
		vs("serval_vxlan."+m, "vxlan_conntrack."+m)
		ratio("serval_crosssubnet."+m, "serval."+m)
		// What routing instead of encapsulating is worth, with policy
		// (conntrack) on both sides, and in Serval itself.
		vs("routed_conntrack."+m, "vxlan_conntrack."+m)
		vs("serval."+m, "serval_vxlan."+m)
	}
	vs("serval.tcp", "vxlan.tcp")
	s.Report.Check(part, "throughput ≥ 0.97 × routed", "serval.tcp", true, ">=", 0.97, "every packet crosses conntrack and serval-node's nftables chains on both hosts, which the reference has not (routed_conntrack is the reference with conntrack alone; see notes); and this machine's noise")
	s.Report.Check(part, "throughput ≥ 1.2 × vxlan", "serval.tcp_vs_vxlan", true, ">=", 1.2, "on veths, encapsulation costs little CPU compared with what the 2 shared cores already spend on copying; the overlay's cost shows on real NICs (MTU, offloads)")
	s.Report.Check(part, "RTT ≤ 1.1 × routed", "serval.rtt", true, "<=", 1.1, "conntrack and nftables on both hosts (see routed_conntrack in the notes); and this machine's noise")
	s.Report.Check(part, "issue 15: throughput over VXLAN ≥ 0.97 × the vxlan reference", "serval_vxlan.tcp", true, ">=", 0.97, "conntrack on the workloads' packets and on the tunnel's, and serval-node's chains, on both hosts; the bridged reference has no firewall at all (serval_vxlan.tcp_vs_vxlan_conntrack compares with conntrack on the tunnel); and this machine's noise")
	s.Report.Check(part, "issue 15: RTT over VXLAN ≤ 1.1 × the vxlan reference", "serval_vxlan.rtt", true, "<=", 1.1, "conntrack and nftables on both hosts, which the reference has not; and this machine's noise")
	s.Report.Check(part, "issue 15: CrossSubnet within one subnet, throughput ≥ 0.97 × Serval routed", "serval_crosssubnet.tcp", true, ">=", 0.97, "the workloads' MTU (the pool may encapsulate, so serval-node gives them the VXLAN MTU) and this machine's noise")
}
