package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// TestAgentControl runs the lab's serval-node plumbing (command line,
// readiness wait, status, agent stop|kill|start) against a fake agent, so
// that it is known to work before the real serval-node exists.
func TestAgentControl(t *testing.T) {
	needRoot(t)
	name := labName(t, "ag")
	tp, err := lab.ParseTopology("ag.yaml", []byte("name: "+name+"\nhosts: [{name: h1, address: 10.97.0.11/24}, {name: h2, address: 10.97.0.12/24}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	opts.BinDir = fakeBinDir
	t.Cleanup(func() { _ = lab.Down(context.Background(), name, opts) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, tp, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, h := range []string{"h1", "h2"} {
		if l.AgentPID(h) == 0 {
			t.Errorf("no agent runs on %s after up", h)
		}
	}
	logData, _ := os.ReadFile(filepath.Join(l.Dir, "logs", "agent-h1.log"))
	if want := "nodename=h1 etcd=http://10.97.0.254:2379 ip=10.97.0.11/24"; !strings.Contains(string(logData), want) {
		t.Errorf("agent log lacks %q (its command line):\n%s", want, logData)
	}

	cli := func(args ...string) (string, int) {
		argv := append([]string{"--run-root", opts.RunRoot, "--bin-dir", fakeBinDir, "--name", name}, args...)
		out, err := exec.Command(filepath.Join(fakeBinDir, "serval-lab"), argv...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	steps := []struct {
		args     []string
		wantCode int
		wantOut  string
		running  bool // on h1 afterwards
	}{
		{[]string{"status"}, 0, "ready", true},
		{[]string{"agent", "start", "h1"}, 1, "already runs on h1", true},
		{[]string{"agent", "stop", "h1"}, 0, "stop done", false},
		{[]string{"agent", "stop", "h1"}, 1, "does not run on h1", false},
		{[]string{"status"}, 0, "stopped", false},
		{[]string{"agent", "start", "h1"}, 0, "start done", true},
		{[]string{"agent", "kill", "h1"}, 0, "kill done", false},
		{[]string{"agent", "start", "h1"}, 0, "start done", true},
		{[]string{"agent", "stop", "nosuch"}, 1, `"nosuch" is not a host`, true},
	}
	for _, s := range steps {
		out, code := cli(s.args...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) {
			t.Errorf("serval-lab %s: exit %d, want %d with %q:\n%s", strings.Join(s.args, " "), code, s.wantCode, s.wantOut, out)
		}
		if got := l.AgentPID("h1") != 0; got != s.running {
			t.Errorf("after serval-lab %s: agent running on h1 = %v, want %v", strings.Join(s.args, " "), got, s.running)
		}
	}
	if l.AgentPID("h2") == 0 {
		t.Errorf("the agent on h2 stopped while h1's was being controlled")
	}
	logData, _ = os.ReadFile(filepath.Join(l.Dir, "logs", "agent-h1.log"))
	if !strings.Contains(string(logData), "stopping on signal") {
		t.Errorf("agent stop did not stop h1's agent gracefully (SIGTERM):\n%s", logData)
	}
}
