package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
)

// Parts in the order a full run measures them.
var Parts = []string{"micro", "cni", "bgp", "dataplane", "control", "scale", "kubernetes"}

// Suite runs benchmark parts. Set Root (the repository), Report and Log;
// the rest has defaults.
type Suite struct {
	Root   string // repository root; binaries are in Root/bin
	Report *report.Report
	Log    *slog.Logger
	// Self is this program's path, re-executed inside network namespaces
	// for the agent load (default os.Executable).
	Self string
	// Hosts is the size of the control-plane lab (10).
	Hosts int
}

// Run runs parts in order. A part's failure is logged and noted in the
// report; Run carries on with the next part and returns the parts that
// failed.
func (s *Suite) Run(ctx context.Context, parts []string) error {
	if s.Self == "" {
		s.Self, _ = os.Executable()
	}
	if s.Hosts == 0 {
		s.Hosts = 10
	}
	fns := map[string]func(context.Context) error{
		"micro": s.micro, "cni": s.cni, "bgp": s.bgp, "dataplane": s.dataplane,
		"control": s.control, "scale": s.scale, "kubernetes": s.kubernetes,
	}
	var failed []string
	for _, p := range parts {
		fn, ok := fns[p]
		if !ok {
			return fmt.Errorf("unknown part %q (known: %s)", p, strings.Join(Parts, ", "))
		}
		start := time.Now()
		s.Log.Info("part starting", "part", p)
		if err := fn(ctx); err != nil {
			s.Log.Error("part failed", "part", p, "err", err)
			s.Report.Note(p, "the part failed: %v", err)
			failed = append(failed, p)
		}
		s.Log.Info("part done", "part", p, "took", time.Since(start).Round(time.Second))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("parts failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func (s *Suite) bin(name string) string { return filepath.Join(s.Root, "bin", name) }

// run runs a command from the repository root, records it under part (when
// part is not empty) and returns its standard output.
func (s *Suite) run(ctx context.Context, part string, argv ...string) (string, error) {
	if part != "" {
		s.Report.Command(part, shellJoin(argv))
	}
	s.Log.Debug("running", "cmd", strings.Join(argv, " "))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.Root
	// Its own process group, so that a cancelled command takes its
	// children with it (go run's binary, a driver's helpers).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLines(errb.String()+out.String(), 8))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// goBench runs go test -bench and parses it.
func (s *Suite) goBench(ctx context.Context, part, pkg, pattern string, extra ...string) (BenchResults, error) {
	argv := append([]string{"go", "test", "-run", "^$", "-bench", pattern}, extra...)
	argv = append(argv, pkg)
	out, err := s.run(ctx, part, argv...)
	res := ParseGoBench(out)
	if err != nil && len(res) == 0 {
		return nil, err
	}
	if err != nil {
		s.Report.Note(part, "%s ended with an error after some results: %v", pkg, err)
	}
	return res, nil
}

// addBench records one metric of one benchmark as a figure (scaled by mul).
func (s *Suite) addBench(part string, res BenchResults, bench, metric, name, unit string, mul float64) {
	vs := res[bench][metric]
	if len(vs) == 0 {
		s.Report.Note(part, "no %s from Benchmark%s", metric, bench)
		return
	}
	xs := make([]float64, len(vs))
	for i, v := range vs {
		xs[i] = v * mul
	}
	s.Report.Add(report.Figure{Part: part, Name: name, Unit: unit, Samples: xs})
}

// micro: the Go micro-benchmarks of the hot paths, each -count 5.
func (s *Suite) micro(ctx context.Context) error {
	const part = "micro"
	type m struct{ pkg, pattern, bench, metric, name, unit string }
	for _, g := range []struct {
		pkg, pattern string
		ms           []m
	}{
		{"./internal/selector/", "Evaluate|Parse", []m{
			{bench: "Evaluate", metric: "ns/op", name: "selector.evaluate", unit: "ns/op"},
			{bench: "EvaluateLabels", metric: "ns/op", name: "selector.evaluate_labels", unit: "ns/op"},
			{bench: "Parse", metric: "ns/op", name: "selector.parse", unit: "ns/op"},
		}},
		{"./internal/calc/", "PolicyChange100x1000|EndpointLabelChange|InitialSync100x1000", []m{
			{bench: "InitialSync100x1000", metric: "ns/op", name: "calc.initial_sync_100x1000", unit: "ms", pattern: "1e-6"},
			{bench: "PolicyChange100x1000", metric: "ns/op", name: "calc.policy_change_100x1000", unit: "µs/op", pattern: "1e-3"},
			{bench: "EndpointLabelChange", metric: "ns/op", name: "calc.endpoint_label_change", unit: "µs/op", pattern: "1e-3"},
		}},
		{"./internal/dataplane/", "Null|Fake", []m{
			{bench: "ColdApplyFake", metric: "ns/op", name: "nft.render_cold_100x1000", unit: "ms", pattern: "1e-6"},
			{bench: "PolicyChangeFake", metric: "ns/op", name: "nft.render_policy_change", unit: "µs/op", pattern: "1e-3"},
			{bench: "PolicyChangeNull", metric: "ns/op", name: "nft.render_policy_change_null", unit: "µs/op", pattern: "1e-3"},
		}},
	} {
		res, err := s.goBench(ctx, part, g.pkg, g.pattern, "-count", "5", "-benchtime", "200ms", "-benchmem")
		if err != nil {
			s.Report.Note(part, "%s: %v", g.pkg, err)
			continue
		}
		for _, x := range g.ms {
			mul := 1.0
			if x.pattern != "" {
				fmt.Sscan(x.pattern, &mul)
			}
			s.addBench(part, res, x.bench, x.metric, x.name, x.unit, mul)
		}
	}
	s.Report.Note(part, "each figure is the median of 5 runs (-count 5) with its spread, as benchstat would summarise it; B/op and allocs/op are in the raw output of the commands")
	return nil
}

// cni: CNI ADD/DEL latency and IPAM allocations per second.
func (s *Suite) cni(ctx context.Context) error {
	const part = "cni"
	res, err := s.goBench(ctx, part, "./test/cni/", "CNI", "-benchtime", "1x", "-count", "3")
	if err != nil {
		return err
	}
	for _, c := range []string{"sequential-100", "concurrent-20"} {
		for _, m := range []string{"add-p50-ms", "add-p99-ms", "del-p50-ms", "del-p99-ms"} {
			s.addBench(part, res, "CNI/"+c, m, "cni."+c+"."+strings.TrimSuffix(m, "-ms"), "ms", 1)
		}
	}
	ipam, err := s.goBench(ctx, part, "./internal/ipam/", "AutoAssignEtcd", "-count", "3", "-benchtime", "200x")
	if err != nil {
		return err
	}
	for name := range ipam {
		s.addBench(part, ipam, name, "allocs/s", "ipam."+strings.ReplaceAll(strings.TrimPrefix(name, "AutoAssignEtcd/"), "/", "_")+".allocs_per_s", "allocs/s", 1)
	}
	s.Report.Check(part, "CNI ADD p50 < 20 ms (sequential; aim of issue 3)", "cni.sequential-100.add-p50", false, "<", 20, "a Go plugin process starts per command (10-13 ms, mostly the etcd client's gRPC/protobuf init) and IPAM makes 2 etcd round trips in a row, one a disk-synced write; see bench/README.md")
	s.Report.Note(part, "p50/p99 are over 100 ADDs and 100 DELs per run; value = median of 3 runs")
	return nil
}

// bgp: bench/bgp's driver when it exists, else the routing package's
// convergence benchmark.
func (s *Suite) bgp(ctx context.Context) error {
	const part = "bgp"
	if ok, err := s.external(ctx, part, "bgp"); ok {
		return err
	}
	res, err := s.goBench(ctx, part, "./internal/routing/", "Convergence", "-count", "3")
	if err != nil {
		return err
	}
	for name := range res {
		n := strings.ReplaceAll(strings.TrimPrefix(name, "Convergence/"), "=", "")
		s.addBench(part, res, name, "ms-to-learn", "bgp.two_speakers."+n+".learn", "ms", 1)
		s.addBench(part, res, name, "ms-to-withdraw", "bgp.two_speakers."+n+".withdraw", "ms", 1)
	}
	s.Report.AddTarget(report.Target{Part: part, What: "BGP convergence, 200 hosts behind 2 route reflectors vs full mesh", Status: report.NotMeasured,
		Limit: "bench/bgp (another engineer's driver) was not in the tree at this run; only two in-process GoBGP speakers were measured"})
	return nil
}

// shellJoin quotes the arguments a shell would mangle, so that a command in
// REPORT.md can be pasted.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " |^$*?{}'\"&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
