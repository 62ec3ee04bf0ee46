package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
	"github.com/servalnet/serval/internal/synthload"
)

// AgentLoadSpec is one synthetic load for serval-node: Local endpoints on
// its host, Remote endpoints on 500 other hosts, Policies global policies
// (each selecting one tenth of the endpoints, rules drawing on 50 distinct
// selectors, as Felix was measured).
type agentLoadSpec struct {
	Local, Remote, Policies int
	Changes                 int // policy changes timed after the first start
	Starts                  int // cold starts timed
	// Datastore is "" (an embedded etcd holding WorkloadEndpoints) or
	// "kubernetes" (a kube-apiserver holding Pods, Serval's kinds as
	// custom resources; kubeload.go).
	Datastore string `json:",omitempty"`
	// Label starts the figures' names (default: none, or "curve." for a
	// part without targets).
	Label string `json:",omitempty"`
}

func (a agentLoadSpec) name() string {
	n := fmt.Sprintf("agent.%dlocal_%dpol", a.Local, a.Policies)
	if a.Remote > 0 {
		n = fmt.Sprintf("agent.%dlocal_%dremote_%dpol", a.Local, a.Remote, a.Policies)
	}
	if a.Label != "" {
		n = a.Label + "." + n
	}
	return n
}

// AgentLoadResult is what one load measured, in milliseconds and MiB.
type AgentLoadResult struct {
	LoadSeconds float64   `json:"load_seconds"` // writing the objects into etcd
	ColdStartMS []float64 `json:"cold_start_ms"`
	ChangeMS    []float64 `json:"change_ms"`
	// ListMS is, per start, the longest initial list of the agent's
	// syncers (its "datastore listed ... took=" line): the part of the
	// cold start spent reading the datastore.
	ListMS     []float64 `json:"list_ms,omitempty"`
	PeakRSSMiB float64   `json:"peak_rss_mib"`
	Notes      []string  `json:"notes"`
}

// agentLoad runs the load in a throwaway namespace (this program again,
// `servalbench agentload`, inside it) and records its figures.
func (s *Suite) agentLoad(ctx context.Context, part string, a agentLoadSpec, targets bool) error {
	ns := labName("al")
	if _, err := s.run(ctx, "", "ip", "netns", "add", ns); err != nil {
		return err
	}
	defer func() { _, _ = s.run(context.Background(), "", "ip", "netns", "del", ns) }()
	spec, _ := json.Marshal(a)
	out, err := s.run(ctx, part, "ip", "netns", "exec", ns, s.Self, "agentload", "--root", s.Root, "--spec", string(spec))
	if err != nil {
		return fmt.Errorf("agent load %s: %w", a.name(), err)
	}
	var r AgentLoadResult
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		return fmt.Errorf("agent load %s: reading its result: %w", a.name(), err)
	}
	n := a.name()
	if !targets && a.Label == "" {
		n = "curve." + n // names unique across parts, for the curves' ratios
	}
	s.Report.Add(report.Figure{Part: part, Name: n + ".cold_start", Unit: "ms", Samples: r.ColdStartMS, Stat: fmt.Sprintf("median of %d starts", len(r.ColdStartMS))})
	s.pcts(part, n+".change", "ms", r.ChangeMS, "changes")
	if len(r.ListMS) > 0 {
		s.Report.Add(report.Figure{Part: part, Name: n + ".cold_start.datastore_list", Unit: "ms", Samples: r.ListMS, Stat: fmt.Sprintf("median of %d starts: the agent's initial list of every kind, within the cold start", len(r.ListMS))})
	}
	s.Report.Add(report.Figure{Part: part, Name: n + ".peak_rss", Unit: "MiB", Value: r.PeakRSSMiB, Stat: "VmHWM after the changes"})
	where := "the embedded etcd"
	if a.Datastore == dsKubernetes {
		where = "the kube-apiserver (pods by client-go in protobuf, policies as GlobalNetworkPolicy custom resources)"
	}
	s.Report.Note(part, "%s: %d objects written to %s in %.1f s. %s", n, a.Local+a.Remote+a.Policies, where, r.LoadSeconds, strings.Join(r.Notes, " "))
	if targets {
		switch {
		case a.Remote == 0:
			s.Report.Check(part, "(c) cold start < 1 s at 100 local / 1,000 GNPs", n+".cold_start", false, "<", 1000, "process start, etcd list of every kind, calc graph, one big nft transaction")
			s.Report.Check(part, "(c) policy change p99 < 30 ms at 100 / 1,000", n+".change.p99", false, "<", 30, "watch event → calc → nft transaction")
			s.Report.Check(part, "(c) peak RSS < 100 MiB at 100 / 1,000", n+".peak_rss", false, "<", 100, "")
		default:
			s.Report.Check(part, "(c) cold start < 5 s at 250 local / 100k remote / 2,000 policies", n+".cold_start", false, "<", 5000, "listing and decoding 100k endpoints from etcd, then set members for every rule selector")
			s.Report.Check(part, "(c) peak RSS < 300 MiB at 250 / 100k / 2,000", n+".peak_rss", false, "<", 300, "")
		}
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// RunAgentLoad is `servalbench agentload`: it runs inside a fresh network
// namespace, starts an embedded etcd on its loopback, writes the synthetic
// load, starts serval-node (nodeBin) against it, and times cold starts and
// policy changes. The result is one JSON line on out.
func RunAgentLoad(ctx context.Context, specJSON, nodeBin string, out io.Writer) error {
	var a agentLoadSpec
	if err := json.Unmarshal([]byte(specJSON), &a); err != nil {
		return fmt.Errorf("--spec: %w", err)
	}
	const node = "benchnode"
	// lo, an uplink with the node's address, and one dummy link per local endpoint.
	var batch strings.Builder
	batch.WriteString("link set lo up\nlink add eth0 type veth peer name eth0p\nlink set eth0 up\nlink set eth0p up\naddress add 10.99.0.1/24 dev eth0\n")
	for i := 0; i < a.Local; i++ {
		fmt.Fprintf(&batch, "link add %s type veth peer name calibp%d\nlink set %[1]s up\n", localIface(a, i), i)
	}
	cmd := exec.CommandContext(ctx, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("creating links: %w: %s", err, b)
	}
	dir, err := os.MkdirTemp("", "servalbench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := AgentLoadResult{}
	var ds datastore.Interface
	var dsArgs []string
	switch a.Datastore {
	case dsEtcd:
		srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: dir, ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
		if err != nil {
			return fmt.Errorf("starting etcd: %w", err)
		}
		defer srv.Close()
		eds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}})
		if err != nil {
			return err
		}
		defer eds.Close()
		ds, dsArgs = eds, []string{"--etcd-endpoints", srv.ClientURL()}
		start := time.Now()
		if err := synthload.Write(ctx, ds, synthload.Spec{Node: node, Local: a.Local, Remote: a.Remote, Policies: a.Policies, Writers: 32}); err != nil {
			return err
		}
		res.LoadSeconds = time.Since(start).Seconds()
	case dsKubernetes:
		k, took, err := writeKubeLoad(ctx, a, node, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return err
		}
		defer k.close()
		ds, dsArgs = k.ds, []string{"--datastore-type", "kubernetes", "--kubeconfig", k.cluster.Kubeconfig}
		res.LoadSeconds = took.Seconds()
	default:
		return fmt.Errorf("--spec: unknown datastore %q", a.Datastore)
	}

	for i := 0; i < max(a.Starts, 1); i++ {
		// Cold: nothing of a previous run in the kernel.
		_ = exec.CommandContext(ctx, "nft", "flush", "ruleset").Run()
		_ = exec.CommandContext(ctx, "ip", "route", "flush", "proto", "80").Run()
		ag, err := startAgent(ctx, nodeBin, dsArgs, dir)
		if err != nil {
			return err
		}
		d, err := ag.waitReady(ctx, 60*time.Second)
		if err != nil {
			ag.stop()
			return err
		}
		res.ColdStartMS = append(res.ColdStartMS, ms(d))
		ag.mu.Lock()
		res.ListMS = append(res.ListMS, ms(ag.listed))
		seen := ag.seen
		ag.mu.Unlock()
		// An agent that does not see the load measures nothing: on the
		// kubernetes datastore, a backend that keeps WorkloadEndpoints as
		// custom resources instead of deriving them from the Pods.
		// (Its largest list holds at least the remote endpoints and the
		// policies; where the local ones are counted varies.)
		if want := a.Remote + a.Policies; seen < want {
			ag.stop()
			return fmt.Errorf("serval-node listed %d objects, fewer than the load's %d remote endpoints and policies (on the kubernetes datastore: are WorkloadEndpoints derived from Pods?)", seen, want)
		}
		if i == 0 {
			res.ChangeMS, err = ag.changes(ctx, ds, a)
			if err != nil {
				res.Notes = append(res.Notes, err.Error())
			}
		}
		res.PeakRSSMiB = max(res.PeakRSSMiB, ag.peakRSS())
		ag.stop()
	}
	return json.NewEncoder(out).Encode(res)
}

type agent struct {
	cmd     *exec.Cmd
	started time.Time
	commits chan time.Time

	mu     sync.Mutex
	listed time.Duration // the longest "datastore listed" took= so far
	seen   int           // the most changes= of a "datastore listed" line
}

func startAgent(ctx context.Context, bin string, dsArgs []string, dir string) (*agent, error) {
	// The defaults a user gets, BGP included: the speaker starts, and the
	// BGP loop follows the same 100,000 endpoints as the dataplane.
	args := append([]string{"--nodename", "benchnode"}, dsArgs...)
	args = append(args, "--ip", "10.99.0.1/24",
		"--status-socket", dir+"/status.sock", "--mtu-file", dir+"/mtu", "--health-listen", "127.0.0.1:9099", "--metrics-listen", "")
	cmd := exec.CommandContext(ctx, bin, args...)
	// For profiling the agent under this load by hand, e.g.
	// SERVALBENCH_AGENT_ARGS=--pprof-listen=127.0.0.1:6060; never set by make bench.
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("SERVALBENCH_AGENT_ARGS"))...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	ag := &agent{cmd: cmd, commits: make(chan time.Time, 1024)}
	ag.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	// SERVALBENCH_AGENT_LOG=FILE keeps the agent's log, to see where its
	// start goes; never set by make bench.
	var logCopy io.Writer = io.Discard
	if p := os.Getenv("SERVALBENCH_AGENT_LOG"); p != "" {
		if f, err := os.Create(p); err == nil {
			logCopy = f
		}
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(logCopy, "%s %s\n", time.Now().Format("15:04:05.000"), sc.Text())
			if strings.Contains(sc.Text(), `msg="datastore listed"`) {
				if d, ok := tookOf(sc.Text()); ok {
					ag.mu.Lock()
					ag.listed = max(ag.listed, d)
					ag.seen = max(ag.seen, changesOf(sc.Text()))
					ag.mu.Unlock()
				}
			}
			if strings.Contains(sc.Text(), "dataplane committed") {
				select {
				case ag.commits <- time.Now():
				default:
				}
			}
		}
	}()
	return ag, nil
}

func (ag *agent) waitReady(ctx context.Context, limit time.Duration) (time.Duration, error) {
	c := http.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := c.Get("http://127.0.0.1:9099/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(ag.started), nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("serval-node not ready within %s", limit)
}

// changes modifies policies that select local endpoints, one at a time,
// and times each from the write until serval-node logs the transaction.
func (ag *agent) changes(ctx context.Context, ds datastore.Interface, a agentLoadSpec) ([]float64, error) {
	time.Sleep(500 * time.Millisecond) // let the start's last transactions pass
	var out []float64
	for c := 0; c < a.Changes; c++ {
		for len(ag.commits) > 0 {
			<-ag.commits
		}
		p := synthload.Policy(c%max(a.Policies, 1), c+1)
		start := time.Now()
		if _, err := ds.Update(ctx, p); err != nil {
			return out, fmt.Errorf("updating %s: %w", p.Name, err)
		}
		select {
		case t := <-ag.commits:
			out = append(out, ms(t.Sub(start)))
		case <-time.After(10 * time.Second):
			return out, fmt.Errorf("change %d: no transaction within 10 s", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out, nil
}

// tookOf reads the took= field of a log line.
func tookOf(line string) (time.Duration, bool) {
	_, after, ok := strings.Cut(line, " took=")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.Fields(after + " ")[0])
	return d, err == nil
}

// changesOf reads the changes= field of a log line (0 without one).
func changesOf(line string) int {
	_, after, ok := strings.Cut(line, " changes=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.Fields(after + " ")[0])
	return n
}

// peakRSS is the agent's VmHWM in MiB.
func (ag *agent) peakRSS() float64 {
	kb := procField(fmt.Sprintf("/proc/%d/status", ag.cmd.Process.Pid), "VmHWM")
	v, _ := strconv.ParseFloat(strings.Fields(kb + " 0")[0], 64)
	return v / 1024
}

func (ag *agent) stop() {
	_ = ag.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = ag.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = ag.cmd.Process.Kill()
		<-done
	}
}
