package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/lab"
)

// propTopology is an n-host lab without router, one workload per host,
// on the datastore kind (embedded: an etcd; kubernetes: a kube-apiserver,
// the workloads Pods of namespace propNamespace).
func propTopology(name string, n int, kind string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ndatastore: {kind: %s}\nhosts:\n", name, kind)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: h%d, address: 172.31.251.%d/24}\n", i, i+1)
	}
	b.WriteString("workloads:\n")
	for i := 0; i < n; i++ {
		ns := ""
		if kind == dsKubernetes {
			ns = ", namespace: " + propNamespace
		}
		fmt.Fprintf(&b, "  - {name: w%d, host: h%d%s, labels: {bench: prop}}\n", i, i, ns)
	}
	b.WriteString("manifests: [base.yaml]\n")
	return b.String()
}

// The base policy lets every bench workload send anything and receive
// only on port 7 (which nothing probes): each change then opens one new
// port, which a probe sees as the moment the change is enforced.
const propBase = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: bench-base
spec:
  selector: bench == 'prop'
  types: [Ingress, Egress]
  ingress:
    - action: Allow
      protocol: TCP
      destination:
        ports: [7]
  egress:
    - action: Allow
`

// propResult is what one lab measured.
type propResult struct {
	propagation []float64 // ms, one per change: until enforced on every host
	reachable   []float64 // ms, one per new workload: CNI ADD start to first answer from a remote host
}

// propagation brings up an n-host lab and measures changes policy changes
// and workloads new workloads.
func (s *Suite) propagation(ctx context.Context, part string, n, changes, workloads int) (*propResult, error) {
	return s.propagationOn(ctx, part, "embedded", n, changes, workloads)
}

// propagationOn is propagation on a lab of the datastore kind: on
// kubernetes, each change is a NetworkPolicy (kubeprop.go).
func (s *Suite) propagationOn(ctx context.Context, part, kind string, n, changes, workloads int) (*propResult, error) {
	l, cleanup, err := s.labUp(ctx, part, propTopology(labName("cp"), n, kind), map[string]string{"base.yaml": propBase})
	if err != nil {
		return nil, err
	}
	defer cleanup()
	src := l.Netns("w0")
	var targets []lab.Endpoint
	for i := 1; i < n; i++ {
		ep, err := l.Resolve(fmt.Sprintf("w%d", i))
		if err != nil {
			return nil, err
		}
		targets = append(targets, ep)
	}
	res := &propResult{}
	w, err := s.startPolicyWriter(ctx, l, kind)
	if err != nil {
		return nil, err
	}
	defer w.close()
	what := "a GlobalNetworkPolicy"
	if kind == dsKubernetes {
		what = "a networking.k8s.io/v1 NetworkPolicy (client-go)"
	}
	s.Report.Command(part, shellJoin(w.cmd.Args)+"   # writes "+what+" opening one more TCP port to every workload; then TCP probes from w0 (host h0) to every other host's workload, a new probe every 10 ms, until all answer")
	for c := 0; c < changes; c++ {
		port := 20000 + c
		spec := lab.ProbeSpec{Proto: "tcp", Port: port, Timeout: 50 * time.Millisecond}
		var lns []*lab.Listener
		for _, t := range targets {
			ln, err := lab.Listen(t.Netns, spec)
			if err != nil {
				return nil, fmt.Errorf("listener in %s: %w", t.Netns, err)
			}
			lns = append(lns, ln)
		}
		start, err := w.write(c, port)
		if err != nil {
			return nil, err
		}
		d, err := s.allAnswer(ctx, src, start, targets, lns, spec, 10*time.Second)
		for _, ln := range lns {
			ln.Close()
		}
		if err != nil {
			s.Report.Note(part, "change %d on %d hosts: %v", c, n, err)
			continue
		}
		res.propagation = append(res.propagation, ms(d))
	}
	s.Log.Info("policy propagation", "hosts", n, "changes", len(res.propagation),
		"p50_ms", report.Percentile(res.propagation, 50), "p99_ms", report.Percentile(res.propagation, 99))
	// (b) new workloads: from the CNI ADD until a workload on another host
	// reaches it, through the policies above (base lets port 7 in).
	s.Report.Command(part, "serval-lab add-workload nK --host h1 --label bench=prop   # then TCP probes to port 7 from w0 (host h0) until one answers")
	for k := 0; k < workloads; k++ {
		name := fmt.Sprintf("n%d", k)
		host := fmt.Sprintf("h%d", 1+k%(n-1))
		start := time.Now()
		wl := lab.Workload{Name: name, Host: host, Labels: map[string]string{"bench": "prop"}}
		if kind == dsKubernetes {
			wl.Namespace = propNamespace
		}
		if err := l.AddWorkload(ctx, wl); err != nil {
			return nil, fmt.Errorf("adding workload %s: %w", name, err)
		}
		ep, err := l.Resolve(name)
		if err != nil {
			return nil, err
		}
		spec := lab.ProbeSpec{Proto: "tcp", Port: 7, Timeout: 50 * time.Millisecond}
		ln, err := lab.Listen(ep.Netns, spec)
		if err != nil {
			return nil, err
		}
		d, err := s.allAnswer(ctx, src, start, []lab.Endpoint{ep}, []*lab.Listener{ln}, spec, 10*time.Second)
		ln.Close()
		if err != nil {
			s.Report.Note(part, "new workload %s on %s: %v", name, host, err)
		} else {
			res.reachable = append(res.reachable, ms(d))
		}
		if err := l.DeleteWorkload(ctx, name); err != nil {
			return nil, fmt.Errorf("deleting workload %s: %w", name, err)
		}
	}
	return res, nil
}

// allAnswer probes every endpoint from namespace src until each has
// answered once, and returns the time from start until the last did. A
// probe whose SYN is dropped waits for its timeout, so a new probe starts
// every probeEvery while earlier ones wait: the resolution is probeEvery,
// not the timeout.
func (s *Suite) allAnswer(ctx context.Context, src string, start time.Time, eps []lab.Endpoint, lns []*lab.Listener, spec lab.ProbeSpec, limit time.Duration) (time.Duration, error) {
	const probeEvery = 10 * time.Millisecond
	spec.Timeout = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var mu sync.Mutex
	var last time.Duration
	var errs []string
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, pcancel := context.WithCancel(ctx)
			defer pcancel()
			answered := make(chan time.Duration, 1)
			tick := time.NewTicker(probeEvery)
			defer tick.Stop()
			var probes sync.WaitGroup
			defer probes.Wait()
			for {
				probes.Add(1)
				go func() {
					defer probes.Done()
					if ok, _ := lab.Send(pctx, src, ep.IP, spec, lns[i]); ok {
						select {
						case answered <- time.Since(start):
						default:
						}
					}
				}()
				select {
				case d := <-answered:
					mu.Lock()
					last = max(last, d)
					mu.Unlock()
					return
				case <-ctx.Done():
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s (%s) not reached within %s", ep.Name, ep.IP, limit))
					mu.Unlock()
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return last, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pcts records p50 and p99 of samples as two figures.
func (s *Suite) pcts(part, name, unit string, xs []float64, what string) {
	if len(xs) == 0 {
		s.Report.Note(part, "%s: no samples", name)
		return
	}
	s.Report.Add(report.Figure{Part: part, Name: name + ".p50", Unit: unit, Value: report.Percentile(xs, 50), Runs: len(xs), Stat: fmt.Sprintf("p50 of %d %s", len(xs), what)})
	s.Report.Add(report.Figure{Part: part, Name: name + ".p99", Unit: unit, Value: report.Percentile(xs, 99), Runs: len(xs), Stat: fmt.Sprintf("p99 of %d %s", len(xs), what)})
}

// control: (a) and (b) on an s.Hosts-host lab, (c) the agent under load,
// (d) and (e) are the cni and bgp parts.
func (s *Suite) control(ctx context.Context) error {
	const part = "control"
	var errs []string
	res, err := s.propagation(ctx, part, s.Hosts, 50, 20)
	if err != nil {
		errs = append(errs, err.Error())
	} else {
		s.pcts(part, fmt.Sprintf("policy_propagation.%dhosts", s.Hosts), "ms", res.propagation, "changes")
		s.pcts(part, fmt.Sprintf("new_workload_reachable.%dhosts", s.Hosts), "ms", res.reachable, "workloads")
	}
	s.Report.Check(part, fmt.Sprintf("(a) policy propagation p99 < 250 ms (%d hosts)", s.Hosts), fmt.Sprintf("policy_propagation.%dhosts.p99", s.Hosts), false, "<", 250, "each agent's watch → calc → one nft transaction; on 2 shared cores 10 agents compete for CPU")
	s.Report.Check(part, "(b) new workload reachable from a remote host p99 < 1 s", fmt.Sprintf("new_workload_reachable.%dhosts.p99", s.Hosts), false, "<", 1000, "CNI ADD (a process per command, IPAM in etcd) then the endpoint's policy on its host")
	s.Report.Note(part, "(a) from the moment just before the policy is written to etcd (by a small writer process in the datastore namespace, `servalbench policy-writer`) until TCP probes from w0 to the workload of every other host get through (a new port opened by the policy; a new probe every 10 ms, each waiting up to 100 ms, so the resolution is ~10 ms); (b) from the start of CNI ADD (serval-lab add-workload, libcni → serval) until a probe from w0 on h0 gets through")

	for _, load := range []agentLoadSpec{
		{Local: 100, Policies: 1000, Changes: 20, Starts: 3},
		{Local: 250, Remote: 100000, Policies: 2000, Changes: 20, Starts: 1},
	} {
		if err := s.agentLoad(ctx, part, load, true); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// scale: (a) at 4 lab sizes and (c) at 4 policy counts.
func (s *Suite) scale(ctx context.Context) error {
	const part = "scale"
	var errs []string
	for _, n := range []int{2, 4, 6, s.Hosts} {
		res, err := s.propagation(ctx, part, n, 15, 0)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		s.pcts(part, fmt.Sprintf("curve.policy_propagation.%dhosts", n), "ms", res.propagation, "changes")
		for _, q := range []string{"p50", "p99"} {
			s.Report.Ratio(fmt.Sprintf("curve.policy_propagation.%dhosts.%s", n, q), "curve.policy_propagation.2hosts."+q)
		}
	}
	for _, p := range []int{250, 500, 1000, 2000} {
		if err := s.agentLoad(ctx, part, agentLoadSpec{Local: 100, Policies: p, Changes: 10, Starts: 1}, false); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, r := range []int{10000, 25000, 50000} {
		if err := s.agentLoad(ctx, part, agentLoadSpec{Local: 250, Remote: r, Policies: 2000, Changes: 5, Starts: 1}, false); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Each point against the smallest: linear growth shows as a ratio equal
	// to the size ratio, better than linear as less.
	for _, p := range []int{500, 1000, 2000} {
		for _, f := range []string{"cold_start", "peak_rss", "change.p50"} {
			s.Report.Ratio(fmt.Sprintf("curve.agent.100local_%dpol.%s", p, f), "curve.agent.100local_250pol."+f)
		}
	}
	for _, r := range []int{25000, 50000} {
		for _, f := range []string{"cold_start", "peak_rss", "change.p50"} {
			s.Report.Ratio(fmt.Sprintf("curve.agent.250local_%dremote_2000pol.%s", r, f), "curve.agent.250local_10000remote_2000pol."+f)
		}
	}
	s.Report.Note(part, "ratios compare each point with the smallest of its curve: growth linear in the work shows as a ratio equal to the size ratio (2×, 4×, 8× policies; 2.5×, 5× remote endpoints), better than linear as less; the 100,000-remote point is in the control part")
	s.Report.Note(part, "policy propagation p50/p99 over 15 changes per lab size (hosts); agent cold start, change latency and peak RSS with 100 local endpoints and 250..2,000 policies, and with 250 local endpoints, 2,000 policies and 10k..50k remote endpoints")
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// RunPolicyWriter is `servalbench policy-writer`: run in the lab's
// datastore namespace, it reads "INDEX PORT" lines, writes the policy
// propPolicy describes straight to etcd, and prints the wall-clock time
// (Unix nanoseconds) just before each write, so that propagation is timed
// from the write itself rather than from a servalctl process's start or
// exit.
func RunPolicyWriter(ctx context.Context, etcd string, in io.Reader, out io.Writer) error {
	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: strings.Split(etcd, ",")})
	if err != nil {
		return err
	}
	defer ds.Close()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var i, port int
		if _, err := fmt.Sscan(sc.Text(), &i, &port); err != nil {
			return fmt.Errorf("reading %q: %w", sc.Text(), err)
		}
		p := &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy"}}
		p.Name = fmt.Sprintf("bench-open-%d", i)
		order := float64(100 + i)
		tcp := api.ProtocolFromString("TCP")
		p.Spec.Selector = "bench == 'prop'"
		p.Spec.Order = &order
		p.Spec.Types = []api.PolicyType{api.PolicyTypeIngress}
		p.Spec.Ingress = []api.Rule{{Action: api.Allow, Protocol: &tcp,
			Source:      api.EntityRule{Selector: "bench == 'prop'"},
			Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(port)}}}}
		p.SetDefaults()
		start := time.Now()
		if _, err := ds.Create(ctx, p); err != nil {
			return fmt.Errorf("creating %s: %w", p.Name, err)
		}
		fmt.Fprintln(out, start.UnixNano())
	}
	return sc.Err()
}

// policyWriter is a running `servalbench policy-writer`.
type policyWriter struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (s *Suite) startPolicyWriter(ctx context.Context, l *lab.Lab, kind string) (*policyWriter, error) {
	target := []string{"--etcd", l.State.EtcdEndpoint}
	if kind == dsKubernetes {
		target = []string{"--kubeconfig", labKubeconfig(l)}
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.Netns("datastore"), s.Self, "policy-writer")
	cmd.Args = append(cmd.Args, target...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the policy writer: %w", err)
	}
	return &policyWriter{cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

// write creates policy i opening port and returns when it was written.
func (w *policyWriter) write(i, port int) (time.Time, error) {
	if _, err := fmt.Fprintf(w.in, "%d %d\n", i, port); err != nil {
		return time.Time{}, fmt.Errorf("policy writer: %w", err)
	}
	if !w.out.Scan() {
		return time.Time{}, fmt.Errorf("policy writer stopped: %v", w.out.Err())
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(w.out.Text()), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("policy writer said %q", w.out.Text())
	}
	return time.Unix(0, ns), nil
}

func (w *policyWriter) close() {
	_ = w.in.Close()
	_ = w.cmd.Wait()
}
