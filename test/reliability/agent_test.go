package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// iperfResult is the part of `iperf3 -J` this test reads.
type iperfResult struct {
	Intervals []struct {
		Sum struct {
			Start, End float64
			Bytes      int64
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumReceived struct{ Bytes int64 } `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// TestAgentKillDuringTransfer SIGKILLs serval-node on h1 during a 10 s
// iperf3 transfer from A (h1) to B (h2) and during policy churn, and
// starts it again: the transfer never stalls (no interval of 0 bytes),
// denied pairs are never allowed (probed in a loop all along), h2 keeps
// the route to A while h1's agent is down (graceful restart), and a policy
// applied during the downtime takes effect once the agent is back.
// test/e2e/restart_test.go covers a plain TCP stream; this one adds iperf3,
// churn and the routes.
func TestAgentKillDuringTransfer(t *testing.T) {
	needRoot(t)
	needBinary(t, "iperf3")
	l := upLab(t, "ag", `
hosts:
  - {name: h1, address: 10.92.0.11/24}
  - {name: h2, address: 10.92.0.12/24}
workloads:
  - {name: A, host: h1, labels: {app: a}, profiles: [open]}
  - {name: D, host: h1, labels: {app: d}}
  - {name: B, host: h2, labels: {app: b}, profiles: [open]}
  - {name: C, host: h2, labels: {app: c}}
`, map[string]string{"open.yaml": openProfile})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	aIP, bIP := workloadIP(t, l, "A"), workloadIP(t, l, "B")
	wantReach(t, l, "A", "B", icmp, true, "both carry the open profile")
	wantReach(t, l, "D", "B", icmp, false, "D has no profile and no policy")

	// iperf3 server in B, client in A for 10 s, half-second intervals.
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", l.Netns("B"), "iperf3", "-s", "-p", "5201")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if !eventually(5*time.Second, func() bool {
		out, _ := nsExec(ctx, l.Netns("B"), "ss", "-Hltn", "sport = :5201")
		return strings.Contains(string(out), "5201")
	}) {
		t.Fatal("iperf3 server in B does not listen")
	}
	type clientOut struct {
		out []byte
		err error
	}
	client := make(chan clientOut, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, "ip", "netns", "exec", l.Netns("A"), "iperf3", "-c", bIP, "-p", "5201", "-t", "10", "-i", "0.5", "-J").Output()
		client <- clientOut{out, err}
	}()

	// Denied pairs (C has no profile; D none until let-d, and C still
	// refuses D after it), probed in a loop for as long as the transfer runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var leaks []string
	probes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		spec := lab.ProbeSpec{Proto: "icmp", Timeout: 300 * time.Millisecond}
		for {
			for _, p := range [][2]string{{"A", "C"}, {"C", "A"}, {"C", "D"}, {"D", "C"}} {
				select {
				case <-stop:
					return
				default:
				}
				ok, err := l.Probe(ctx, p[0], p[1], spec)
				mu.Lock()
				probes++
				if ok || err != nil {
					leaks = append(leaks, fmt.Sprintf("%s -> %s at %s (err %v)", p[0], p[1], time.Now().Format("15:04:05.000"), err))
				}
				mu.Unlock()
			}
		}
	}()
	// Policy churn: a policy that opens a port nobody probes on B comes
	// and goes, so the agents recompute and reprogram all along.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			churn := fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: churn}
spec:
  order: %d
  selector: app == 'b'
  ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'a'}, destination: {ports: [%d]}}]
`, i, 9000+i%50)
			_, _ = l.Servalctl(ctx, []byte(churn), "apply", "-f", "-")
			if i%3 == 2 {
				_, _ = l.Servalctl(ctx, nil, "delete", "globalnetworkpolicy", "churn")
			}
		}
	}()

	time.Sleep(2 * time.Second)
	if err := l.AgentStop("h1", true); err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	// While h1's agent is down: h2 keeps its route to A, and a policy
	// that lets D out is written (it needs h1's agent to take effect).
	letD := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: let-d}
spec:
  selector: app == 'd'
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
`
	if out, err := l.Servalctl(ctx, []byte(letD), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply during the downtime: %v\n%s", err, out)
	}
	// Routes both ways, watched from the kill until the transfer ends:
	// through the downtime, the restart and the BGP session's return.
	var routeLosses []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, c := range []struct{ host, dst, via string }{{"h2", aIP, "10.92.0.11"}, {"h1", bIP, "10.92.0.12"}} {
				out, err := nsExec(ctx, l.Netns(c.host), "ip", "route", "get", c.dst)
				if err != nil || !strings.Contains(string(out), "via "+c.via) {
					mu.Lock()
					routeLosses = append(routeLosses, fmt.Sprintf("%s: %s (%v) %.1f s after the kill", c.host, strings.TrimSpace(string(out)), err, time.Since(downAt).Seconds()))
					mu.Unlock()
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	if err := l.AgentStart(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	t.Logf("serval-node on h1 down for %s (SIGKILL to ready)", time.Since(downAt).Round(100*time.Millisecond))

	res := <-client
	close(stop)
	wg.Wait()
	if len(routeLosses) > 0 {
		t.Errorf("routes between h1 and h2 went missing around the agent's restart (graceful restart should keep them):\n  %s", strings.Join(routeLosses, "\n  "))
	}
	var r iperfResult
	if err := json.Unmarshal(res.out, &r); err != nil {
		t.Fatalf("iperf3 output (err %v): %v\n%s", res.err, err, res.out)
	}
	if res.err != nil || r.Error != "" {
		t.Errorf("iperf3 failed: %v %s", res.err, r.Error)
	}
	if len(r.Intervals) < 18 {
		t.Errorf("iperf3 reported %d half-second intervals, want 20: the transfer stopped", len(r.Intervals))
	}
	var per []string
	for _, iv := range r.Intervals {
		per = append(per, fmt.Sprintf("%.1f:%dMB", iv.Sum.Start, iv.Sum.Bytes>>20))
	}
	t.Logf("iperf3 intervals: %s", strings.Join(per, " "))
	for _, iv := range r.Intervals {
		if iv.Sum.Bytes == 0 {
			t.Errorf("iperf3 interval %.1f-%.1f s carried 0 bytes: the transfer stalled", iv.Sum.Start, iv.Sum.End)
		}
	}
	t.Logf("iperf3: %d intervals, %d bytes received; %d denied-pair probes", len(r.Intervals), r.End.SumReceived.Bytes, probes)
	if len(leaks) > 0 {
		t.Errorf("denied pairs were allowed %d times out of %d probes:\n  %s", len(leaks), probes, strings.Join(leaks, "\n  "))
	}
	if probes < 8 {
		t.Errorf("only %d denied-pair probes ran", probes)
	}
	// Converged: the policy written during the downtime took effect.
	// The churn policy goes first: while it selects B, B's tier ends in
	// deny for anything it does not allow, D included.
	_, _ = l.Servalctl(ctx, nil, "delete", "globalnetworkpolicy", "churn")
	wantReach(t, l, "D", "B", icmp, true, "let-d was applied while h1's agent was down")
	if t.Failed() {
		out, _ := nsExec(ctx, l.Netns("h1"), "nft", "list", "table", "inet", "serval")
		t.Logf("h1's nftables table at the end:\n%s", out)
		log, _ := exec.Command("tail", "-n", "40", l.Dir+"/logs/agent-h1.log").Output()
		t.Logf("h1's agent log:\n%s", log)
	}
}
