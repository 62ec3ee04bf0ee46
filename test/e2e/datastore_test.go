package e2e

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

const etcdClusterTopo = `
datastore: {kind: etcd-cluster, members: 3}
hosts:
  - {name: host1, address: 172.17.11.101/24}
  - {name: host2, address: 172.17.11.102/24}
workloads:
  - {name: A, host: host1}
  - {name: B, host: host2}
  - {name: C, host: host2, labels: {isolated: "yes"}}
manifests: [testdata/churn-policy.yaml]
`

// TestEtcdCluster runs a lab on a 3-member etcd cluster: it comes up,
// workloads get addresses and policy applies; with one member killed
// (the first endpoint every client tries) a new workload can still be
// added on either host and policy applies to it; down removes the members.
func TestEtcdCluster(t *testing.T) {
	needRoot(t)
	needAgent(t)
	name := labName(t, "etcdc")
	l, opts := upLab(t, name, etcdClusterTopo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	members := lab.DatastoreMembers(l.State.Topology)
	if len(members) != 3 || strings.Count(l.State.EtcdEndpoint, ",") != 2 {
		t.Fatalf("members %v, endpoints %q: want 3 of each", members, l.State.EtcdEndpoint)
	}
	pids := map[string]int{}
	for _, m := range members {
		pids[m.Name] = readPidfile(t, l, m.Name)
	}
	// The agents were given every member.
	for _, h := range []string{"host1", "host2"} {
		cmdline, err := os.ReadFile("/proc/" + itoa(l.AgentPID(h)) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(cmdline, []byte(l.State.EtcdEndpoint)) {
			t.Errorf("serval-node on %s was not given all endpoints %s: %q", h, l.State.EtcdEndpoint, cmdline)
		}
	}

	tcp := lab.ProbeSpec{Proto: "tcp", Port: 8080, Timeout: time.Second}
	check := func(when string, pairs [][2]string, want bool) {
		t.Helper()
		for _, p := range pairs {
			if ok, err := l.Probe(ctx, p[0], p[1], tcp); err != nil || ok != want {
				t.Errorf("%s: %s -> %s: allowed=%v err=%v, want allowed=%v", when, p[0], p[1], ok, err, want)
			}
		}
	}
	check("all members up", [][2]string{{"A", "B"}, {"B", "A"}, {"C", "A"}}, true)
	check("all members up", [][2]string{{"A", "C"}}, false)

	out, code := servalLab(t, opts, name, "status")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if n := strings.Count(out, ", healthy, "); n != 3 || strings.Count(out, "healthy, leader") != 1 {
		t.Errorf("status shows %d healthy members, want 3 with one leader:\n%s", n, out)
	}

	if out, code := servalLab(t, opts, name, "datastore", "kill", "etcd1"); code != 0 {
		t.Fatalf("datastore kill etcd1: exit %d\n%s", code, out)
	}
	// When etcd1 led, the others elect a new leader first, and say they
	// are unhealthy meanwhile.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, _ = servalLab(t, opts, name, "status")
		if regexp.MustCompile(`etcd1 .* NOT RUNNING`).MatchString(out) && strings.Count(out, ", healthy, ") == 2 && strings.Count(out, "healthy, leader") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("status after killing etcd1 should show etcd1 not running and the 2 others healthy, one leading:\n%s", out)
			break
		}
	}

	// New workloads on both hosts, through CNI and the agents, with one
	// member gone.
	for _, w := range []lab.Workload{
		{Name: "D", Host: "host2"},
		{Name: "E", Host: "host1", Labels: map[string]string{"isolated": "yes"}},
	} {
		if err := l.AddWorkload(ctx, w); err != nil {
			t.Fatalf("adding %s with etcd1 killed: %v", w.Name, err)
		}
	}
	eventuallyProbe(t, l, "A", "D", tcp, true, 20*time.Second)
	eventuallyProbe(t, l, "E", "B", tcp, true, 20*time.Second)
	check("etcd1 killed", [][2]string{{"D", "A"}, {"A", "B"}}, true)
	check("etcd1 killed", [][2]string{{"D", "E"}, {"B", "E"}, {"A", "C"}}, false)

	// down stops every member and removes the namespace.
	if err := lab.Down(context.Background(), name, opts); err != nil {
		t.Fatalf("down: %v", err)
	}
	for m, pid := range pids {
		if _, err := os.Stat("/proc/" + itoa(pid)); err == nil && m != "etcd1" {
			if data, _ := os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); bytes.Contains(data, []byte(name)) {
				t.Errorf("etcd member %s (pid %d) still runs after down", m, pid)
			}
		}
	}
	if _, err := os.Stat("/run/netns/" + l.Netns("datastore")); err == nil {
		t.Errorf("the datastore namespace is still there after down")
	}
}

// readPidfile is the pid of a lab daemon, from its pidfile.
func readPidfile(t *testing.T, l *lab.Lab, id string) int {
	t.Helper()
	data, err := os.ReadFile(l.Dir + "/pids/" + id + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmtSscan(string(data), &pid); err != nil {
		t.Fatalf("pidfile of %s: %v", id, err)
	}
	return pid
}
