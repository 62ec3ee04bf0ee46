package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

const restartTopo = `
hosts:
  - {name: host1, address: 172.17.10.101/24}
  - {name: host2, address: 172.17.10.102/24}
workloads:
  - {name: A, host: host1, labels: {role: client}}
  - {name: B, host: host2, labels: {role: server}}
  - {name: C, host: host2, labels: {role: secret}}
`

// restartAllow lets A out, lets A reach B on 5201, and lets anyone reach C
// (so that the deny below is what keeps A out, not a missing allow).
const restartAllow = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: restart-client-out}
spec:
  selector: role == 'client'
  types: [Egress]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: restart-a-to-b}
spec:
  order: 10
  selector: role == 'server'
  types: [Ingress]
  ingress:
    - {action: Allow, protocol: TCP, source: {selector: role == 'client'}, destination: {ports: [5201]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: restart-c-open}
spec:
  order: 20
  selector: role == 'secret'
  types: [Ingress]
  ingress: [{action: Allow}]
`

// restartDeny keeps A out of C; it comes before restart-c-open.
const restartDeny = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: restart-deny-a-to-c}
spec:
  order: 5
  selector: role == 'secret'
  types: [Ingress]
  ingress:
    - {action: Deny, source: {selector: role == 'client'}}
`

// TestAgentRestartUnderTraffic kills serval-node (SIGKILL) on B's host and
// starts it again while A streams TCP to B and keeps trying the denied
// pair A→C: the stream never stalls for long, A never reaches C, and the
// restarted agent finds its nftables table as it left it (no transaction
// that changes anything).
func TestAgentRestartUnderTraffic(t *testing.T) {
	needRoot(t)
	needAgent(t)
	name := labName(t, "restart")
	l, _ := upLab(t, name, restartTopo)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	apply := func(doc string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Servalctl(ctx, nil, "apply", "-f", f); err != nil {
			t.Fatalf("servalctl apply: %v\n%s", err, out)
		}
	}
	a, b, c := resolve(t, l, "A"), resolve(t, l, "B"), resolve(t, l, "C")
	bAddr := net.JoinHostPort(b.IP.String(), "5201")
	cAddr := net.JoinHostPort(c.IP.String(), "5201")
	var received atomic.Int64
	recvStop := receive(t, b.Netns, bAddr, &received)
	serveIn(t, c.Netns, cAddr)

	// The probe of A→C must be able to see a leak: with only the allows,
	// A reaches C.
	apply(restartAllow)
	waitFor(t, 20*time.Second, "A reaches B and C before the deny", func() bool {
		return connect(a.Netns, bAddr) == nil && connect(a.Netns, cAddr) == nil
	})
	apply(restartDeny)
	waitFor(t, 20*time.Second, "A→C denied", func() bool { return connect(a.Netns, cAddr) != nil })

	// The stream A→B, counted by the receiver, sampled every 100 ms.
	sendStop := send(t, a.Netns, bAddr)
	var leaks atomic.Int32
	probeCtx, probeStop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for probeCtx.Err() == nil {
			if connect(a.Netns, cAddr) == nil {
				leaks.Add(1)
				t.Errorf("%s: A reached C, which policy denies", time.Now().Format("15:04:05.000"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var samples []int64
	var sampleTimes []time.Time
	sampleStop := make(chan struct{})
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleStop:
				return
			case now := <-tick.C:
				samples = append(samples, received.Load())
				sampleTimes = append(sampleTimes, now)
			}
		}
	}()

	logPath := filepath.Join(l.Dir, "logs", "agent-host2.log")
	time.Sleep(2 * time.Second) // traffic before
	before := fileSize(t, logPath)
	killedAt := time.Now()
	if err := l.AgentStop("host2", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // traffic while the agent is down
	if err := l.AgentStart(ctx, "host2"); err != nil {
		t.Fatal(err)
	}
	readyAt := time.Now()
	time.Sleep(3 * time.Second) // traffic after, through a few applies

	close(sampleStop)
	<-sampleDone
	probeStop()
	wg.Wait()
	sendStop()
	recvStop()
	t.Logf("agent killed at +0, ready again at +%v; %d bytes received; %d probes of A→C leaked",
		readyAt.Sub(killedAt).Round(time.Millisecond), received.Load(), leaks.Load())

	// No gap: the receiver's count grows in every second of the run.
	var worst time.Duration
	var worstAt time.Time
	last := 0
	for i := 1; i < len(samples); i++ {
		if samples[i] > samples[last] {
			if g := sampleTimes[i].Sub(sampleTimes[last]); g > worst {
				worst, worstAt = g, sampleTimes[last]
			}
			last = i
		}
	}
	if g := sampleTimes[len(samples)-1].Sub(sampleTimes[last]); g > worst {
		worst, worstAt = g, sampleTimes[last]
	}
	t.Logf("longest stall of the stream: %v (from %+v after the kill)", worst, worstAt.Sub(killedAt).Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("the stream A→B stalled for %v (from %v after the kill); want no gap over 1s", worst, worstAt.Sub(killedAt).Round(time.Millisecond))
	}
	if samples[len(samples)-1] == 0 {
		t.Errorf("the stream A→B carried nothing")
	}

	// The restarted agent's transactions changed nothing: it logs one
	// "dataplane committed" line per transaction with ops.
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	after := string(data[min(before, int64(len(data))):])
	if strings.TrimSpace(after) == "" {
		t.Fatalf("no log from the restarted agent in %s", logPath)
	}
	for _, line := range strings.Split(after, "\n") {
		if strings.Contains(line, "dataplane committed") {
			t.Errorf("the restarted agent changed its nftables table: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("log of the restarted agent (%s):\n%s", logPath, after)
	}
}

func resolve(t *testing.T, l *lab.Lab, name string) lab.Endpoint {
	t.Helper()
	ep, err := l.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within %v", what, d)
}

// connect opens and closes one TCP connection from namespace ns.
func connect(ns, addr string) error {
	return lab.InNetns(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// serveIn listens on addr in ns and closes every connection it accepts.
func serveIn(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := lab.InNetns(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// receive accepts connections on addr in ns and adds every byte read to
// n; short probes (A reaching B) are served too.
func receive(t *testing.T, ns, addr string, n *atomic.Int64) (stop func()) {
	t.Helper()
	var ln net.Listener
	if err := lab.InNetns(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64<<10)
				for {
					k, err := c.Read(buf)
					n.Add(int64(k))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// send streams to addr from ns, about 2 MB/s in 4 KiB writes, on one
// connection for the whole test: an established flow, as a restart must
// not disturb.
func send(t *testing.T, ns, addr string) (stop func()) {
	t.Helper()
	var c net.Conn
	if err := lab.InNetns(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr, 2*time.Second); return err }); err != nil {
		t.Fatalf("stream to %s: %v", addr, err)
	}
	done := make(chan struct{})
	finished := make(chan error, 1)
	go func() {
		buf := make([]byte, 4<<10)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				finished <- nil
				return
			case <-tick.C:
			}
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(buf); err != nil {
				finished <- fmt.Errorf("stream write: %w", err)
				return
			}
		}
	}()
	return func() {
		close(done)
		if err := <-finished; err != nil && err != io.EOF {
			t.Errorf("%v", err)
		}
		c.Close()
	}
}
