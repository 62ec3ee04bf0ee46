package runner

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
	"github.com/servalnet/serval/internal/lab"
)

const (
	// seconds per iperf3 run: 4 (5 until issue 15) so that 5 rounds of 5
	// references and 3 Serval paths take about as long as 3 rounds of 5 s
	// took for fewer paths
	iperfSecs = 4
	// rounds, interleaved: single runs spread by 15% on this machine, so
	// every figure is a median of 5 and every ratio has its spread
	iperfRuns = 5
)

// labName is "bench" plus a random suffix, unique on the machine.
func labName(kind string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("b%s%x", kind, b)
}

// labUp writes the topology and its manifests to a temporary directory and
// brings the lab up; the returned function removes everything.
func (s *Suite) labUp(ctx context.Context, part, topo string, manifests map[string]string) (*lab.Lab, func(), error) {
	dir, err := os.MkdirTemp("", "servalbench-")
	if err != nil {
		return nil, nil, fmt.Errorf("temporary directory for the lab: %w", err)
	}
	for name, body := range manifests {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		return nil, nil, fmt.Errorf("writing the topology: %w", err)
	}
	t, err := lab.LoadTopology(path)
	if err != nil {
		return nil, nil, err
	}
	opts := lab.Options{BinDir: filepath.Join(s.Root, "bin"), Logger: s.Log.With("lab", t.Name)}
	cleanup := func() {
		if err := lab.Down(context.Background(), t.Name, opts); err != nil {
			s.Log.Warn("lab down", "lab", t.Name, "err", err)
		}
		os.RemoveAll(dir)
	}
	router := "no router"
	if t.Router != nil {
		router = "router " + t.Router.Kind
	}
	if t.Wire() {
		router = "one veth wire between the hosts, " + router
	}
	store := "embedded etcd"
	if t.Kubernetes() {
		store = "kube-apiserver on embedded etcd (datastore kind kubernetes)"
	}
	s.Report.Command(part, fmt.Sprintf("serval-lab up -f topology.yaml   # %d hosts, %d workloads, %s, %s", len(t.Hosts), len(t.Workloads), router, store))
	start := time.Now()
	l, err := lab.Up(ctx, t, opts)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("bringing up lab %s: %w", t.Name, err)
	}
	s.Log.Info("lab up", "lab", t.Name, "hosts", len(t.Hosts), "took", time.Since(start).Round(100*time.Millisecond))
	return l, cleanup, nil
}

// dataplane: iperf3 and ping through Serval (routed, over VXLAN, and
// CrossSubnet within one subnet) beside the reference dataplanes of
// reference.go, all in this run.
func (s *Suite) dataplane(ctx context.Context) error {
	const part = "dataplane"
	// The Serval labs first, then rounds of (references, Serval paths): on
	// a shared machine the load drifts, and interleaving gives each side
	// the same share of it; the per-round ratios give each ratio's spread.
	paths := servalPaths()
	for _, p := range paths {
		err := p.up(ctx, s, part)
		if p.cleanup != nil {
			defer p.cleanup()
		}
		if err != nil {
			return err
		}
	}
	tput := map[string][]float64{}
	rtts := map[string][]float64{}
	for i := 0; i < iperfRuns; i++ {
		for _, kind := range referenceKinds {
			v, r, err := s.reference(ctx, part, kind, i == 0)
			if err != nil {
				s.Report.Note(part, "%s reference, round %d: %v", kind, i+1, err)
				continue
			}
			tput[kind] = append(tput[kind], v)
			rtts[kind] = append(rtts[kind], r)
		}
		for _, p := range paths {
			p.measure(ctx, s, part, i, tput, rtts)
		}
	}
	s.dpFigures(part, paths, tput, rtts)

	if ok, perr := s.external(ctx, part, "policy"); ok {
		if perr != nil {
			s.Report.Note(part, "bench/policy: %v", perr)
		}
	} else if err := s.connRate(ctx, part); err != nil {
		s.Report.Note(part, "connections/s and first-packet latency with 0/100/1,000/5,000 policies: not measured (%v)", err)
		s.Report.AddTarget(report.Target{Part: part, What: "connections/s at 5,000 policies ≥ 0.9 × at 0", Status: report.NotMeasured, Got: "—", Limit: err.Error()})
	}
	return nil
}

// runOnce is run, recording the command only when record is set (for
// commands repeated several times).
func (s *Suite) runOnce(ctx context.Context, part string, record bool, argv ...string) (string, error) {
	if !record {
		part = ""
	}
	return s.run(ctx, part, argv...)
}

// dpTopology is the "two hosts joined by one veth wire": the lab's
// wire fabric, one veth pair between the two host namespaces (as the
// routed reference's hosts, on a /24 of their own, each host's default
// route via the other), BGP between the two serval-nodes over it, and the
// datastore off the wire on a management link per host.
const dpTopology = `name: %s
fabric: wire
datastore: {kind: embedded}
hosts:
  - {name: host1, address: 172.31.250.1/24}
  - {name: host2, address: 172.31.250.2/24}
workloads:
  - {name: A, host: host1, labels: {bench: dp}}
  - {name: B, host: host2, labels: {bench: dp}}
manifests: [pool.yaml, allow.yaml]
`

const dpPolicy = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: bench-allow
spec:
  selector: bench == 'dp'
  types: [Ingress, Egress]
  ingress:
    - action: Allow
      source:
        selector: bench == 'dp'
  egress:
    - action: Allow
`

// iperf measures TCP throughput from client namespace to server at ip.
func (s *Suite) iperf(ctx context.Context, part string, record bool, serverNS, clientNS, ip string) (float64, error) {
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", serverNS, "iperf3", "-s", "-1", "-B", ip)
	if record {
		s.Report.Command(part, strings.Join(srv.Args, " ")+" &")
	}
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("starting iperf3 -s in %s: %w", serverNS, err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, err := s.runOnce(ctx, part, record, "ip", "netns", "exec", clientNS, "iperf3", "-c", ip, "-t", strconv.Itoa(iperfSecs), "-J")
	if err != nil {
		return 0, err
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("reading iperf3's result: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// ping returns the average RTT in ms of 20 pings, 50 ms apart.
func (s *Suite) ping(ctx context.Context, part string, record bool, ns, ip string) (float64, error) {
	out, err := s.runOnce(ctx, part, record, "ip", "netns", "exec", ns, "ping", "-q", "-c", "20", "-i", "0.05", ip)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "rtt") || strings.Contains(line, "round-trip") {
			_, vals, _ := strings.Cut(line, "=")
			f := strings.Split(strings.TrimSpace(vals), "/")
			if len(f) >= 2 {
				return strconv.ParseFloat(f[1], 64)
			}
		}
	}
	return 0, fmt.Errorf("no rtt line in ping's output: %s", lastLines(out, 3))
}

// connSeries maps one sub-benchmark of bench/policy's BenchmarkConnRate
// to the figures' base name, the base name of the series' own 0 figure
// (what its ratios are to) and what the series is, for the report; ok is
// false for a sub-benchmark it does not know.
func connSeries(bench string) (name, zero, what string, ok bool) {
	kind, n, found := strings.Cut(strings.TrimPrefix(bench, "ConnRate/"), "=")
	if !found || !strings.HasPrefix(bench, "ConnRate/") {
		return "", "", "", false
	}
	if _, err := strconv.Atoi(n); err != nil {
		return "", "", "", false
	}
	switch kind {
	case "policies":
		return "conns.policies" + n, "conns.policies0", "Serval's table, " + n + " policies", true
	case "uncompiled":
		return "conns.uncompiled" + n, "conns.policies0", "Serval's table, " + n + " policies kept from compiling (a jump each)", true
	case "iptables":
		return "iptables.conns.rules" + n, "iptables.conns.rules0", "iptables chain, " + n + " non-matching rules before the accept", true
	}
	return "", "", "", false
}

// connRate runs bench/policy's root benchmark (its load tool and host
// set-up): new TCP connections per second and first-packet latency with N
// policies in Serval's table, and with N rules in a linear iptables chain,
// one sub-benchmark per point of each series.
func (s *Suite) connRate(ctx context.Context, part string) error {
	if _, err := os.Stat(filepath.Join(s.Root, "bench", "policy")); err != nil {
		return fmt.Errorf("bench/policy is not in the tree")
	}
	res, err := s.goBench(ctx, part, "./bench/policy/", "ConnRate", "-benchtime", "1x", "-count", "3")
	if err != nil {
		return err
	}
	var names []string
	for name := range res {
		if _, _, _, ok := connSeries(name); ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("BenchmarkConnRate gave no results")
	}
	// By series, then by N: the curves read down the table.
	order := map[string]int{"ConnRate/policies": 0, "ConnRate/uncompiled": 1, "ConnRate/iptables": 2}
	sort.Slice(names, func(i, j int) bool {
		ki, ni, _ := strings.Cut(names[i], "=")
		kj, nj, _ := strings.Cut(names[j], "=")
		if ki != kj {
			return order[ki] < order[kj]
		}
		a, _ := strconv.Atoi(ni)
		b, _ := strconv.Atoi(nj)
		return a < b
	})
	for _, bench := range names {
		n, _, what, _ := connSeries(bench)
		for _, m := range []struct{ metric, suffix, unit string }{
			{"conns/s", ".rate", "conn/s"}, {"p50-µs", ".first_packet_p50", "µs"}, {"p99-µs", ".first_packet_p99", "µs"},
		} {
			vs := res[bench][m.metric]
			if len(vs) == 0 {
				s.Report.Note(part, "no %s from Benchmark%s", m.metric, bench)
				continue
			}
			s.Report.Add(report.Figure{Part: part, Name: n + m.suffix, Unit: m.unit, Samples: vs,
				Stat: fmt.Sprintf("median of %d; %s", len(vs), what)})
		}
	}
	for _, bench := range names {
		n, zero, _, _ := connSeries(bench)
		s.Report.Ratio(n+".rate", zero+".rate")
	}
	s.Report.Check(part, "connections/s at 5,000 policies ≥ 0.9 × at 0", "conns.policies5000.rate", true, ">=", 0.9, "see bench/policy")
	s.Report.Note(part, "connections/s and first-packet latency: bench/policy's BenchmarkConnRate, median of 3 runs per point; each run is 5 s of 2 loops (connect, one byte each way, close) from workload w1 to w2, both behind one host namespace (veths with proxy ARP and /32 routes, as serval-cni wires them); first packet = connect() time, SYN to SYN-ACK, the only packet of a connection that walks the rules (the rest is conntrack established)")
	s.Report.Note(part, "conns.policiesN: the host programmed by internal/dataplane directly (Serval's nftables table, no agent), N policies on w2's ingress, none matching w1's traffic but the last; they compile into set lookups and verdict maps. conns.uncompiledN: the same policies kept from compiling, one jump per policy. Ratios to conns.policies0")
	ipt := "iptables-nft"
	if out, err := exec.CommandContext(ctx, "iptables-nft", "-V").Output(); err == nil {
		ipt = strings.TrimSpace(string(out))
	}
	s.Report.Note(part, "iptables.conns.rulesN: the linear-chain comparison, the same namespaces and load with no Serval table: the host's FORWARD chain (policy DROP) is `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`, then N rules `-s <a /27> -d w2 -p tcp --dport <port> -j ACCEPT` that w1's traffic never matches, then the accept of w1→w2:8080; loaded with iptables-nft-restore (%s): the same nftables engine Serval's table runs in, so the two curves differ only in the rules' layout. Ratios to iptables.conns.rules0", ipt)
	s.Report.Note(part, "the two curves, connections/s as a fraction of their own 0 figure (first-packet p50): %s", connCurves(s.Report))
	return nil
}

// connCurves is one line comparing the Serval and iptables series at
// each N.
func connCurves(r *report.Report) string {
	var parts []string
	for _, sr := range []struct{ label, prefix string }{{"Serval", "conns.policies"}, {"iptables", "iptables.conns.rules"}} {
		var pts []string
		for _, n := range []string{"0", "100", "1000", "5000"} {
			f, p := r.Get(sr.prefix+n+".rate"), r.Get(sr.prefix+n+".first_packet_p50")
			if f == nil {
				continue
			}
			pt := fmt.Sprintf("%s: %.3g conn/s", n, f.Value)
			if f.RatioTo != "" {
				pt = fmt.Sprintf("%s: %.2f×", n, f.Ratio)
			}
			if p != nil {
				pt += fmt.Sprintf(" (%.0f µs)", p.Value)
			}
			pts = append(pts, pt)
		}
		if len(pts) == 0 {
			pts = []string{"not measured"}
		}
		parts = append(parts, sr.label+" "+strings.Join(pts, ", "))
	}
	return strings.Join(parts, "; ")
}
