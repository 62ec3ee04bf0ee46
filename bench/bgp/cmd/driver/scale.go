package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/routing"
)

// Speakers without a dataplane: host i is 127.1.(i/250).(i%250+1) on
// the loopback of a network namespace of our own, owns block i of
// 10.64.0.0/10, and runs an embedded GoBGP speaker (routing.Speaker,
// Netlink nil) configured by routing.Compute from synthesised Nodes,
// BGPConfiguration and BGPPeer, as serval-node would be.

func hostAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
}

func hostBlock(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + i/1024), byte(i % 1024 / 4), byte(i % 4 * 64)}), 26)
}

// clusterInput is the datastore of an n-host cluster: with rrs > 0, the
// mesh is off and hosts 0..rrs-1 are reflectors every node peers with
// (Calico's documented setup); with rrs == 0, the default full mesh.
func clusterInput(n, rrs int) routing.Input {
	in := routing.Input{
		Pools: []*api.IPPool{{ObjectMeta: api.ObjectMeta{Name: "pool"}, Spec: api.IPPoolSpec{CIDR: "10.64.0.0/10"}}},
	}
	bind := "NodeIP" // every speaker listens on its own loopback address
	mesh := rrs == 0
	in.BGPConfigs = []*api.BGPConfiguration{{ObjectMeta: api.ObjectMeta{Name: api.BGPDefaultConfigName},
		Spec: api.BGPConfigurationSpec{NodeToNodeMeshEnabled: &mesh, BindMode: &bind}}}
	for i := 0; i < n; i++ {
		node := &api.Node{ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("h%03d", i), Labels: map[string]string{}},
			Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: hostAddr(i).String() + "/32"}}}
		if i < rrs {
			node.Labels["route-reflector"] = "true"
			node.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
		}
		in.Nodes = append(in.Nodes, node)
	}
	if rrs > 0 {
		in.Peers = []*api.BGPPeer{{ObjectMeta: api.ObjectMeta{Name: "peer-with-route-reflectors"},
			Spec: api.BGPPeerSpec{PeerSelector: "route-reflector == 'true'"}}}
	}
	return in
}

type childReport struct {
	Speakers    int     `json:"speakers"`
	ConvergedMS float64 `json:"convergedMs"` // from the common start to the last of ours learning every block
	RSSKB       int     `json:"rssKb"`       // VmRSS once converged
	BaselineKB  int     `json:"baselineKb"`  // VmRSS before any speaker started
	HeapKB      int     `json:"heapKb"`      // Go heap in use once converged, after a GC
	BaseHeapKB  int     `json:"baseHeapKb"`
}

// runChild runs speakers first..last-1 of an n-host cluster. It prints
// "ready", waits for "go <unix-nanos>" on stdin, starts them, waits until
// each has learned every other block, prints its report, and keeps them up
// until stdin closes (the other process's speakers still need them).
func runChild(n, rrs, first, last int, timeout time.Duration) error {
	log := slog.New(slog.DiscardHandler)
	in := clusterInput(n, rrs)
	desired := make([]routing.Desired, 0, last-first)
	for i := first; i < last; i++ {
		ni := in
		ni.NodeName = in.Nodes[i].Name
		ni.OwnedBlocks = []netip.Prefix{hostBlock(i)}
		d, err := routing.Compute(ni, nil)
		if err != nil {
			return fmt.Errorf("computing %s: %w", ni.NodeName, err)
		}
		if len(d.Problems) > 0 {
			return fmt.Errorf("computing %s: %v", ni.NodeName, d.Problems)
		}
		desired = append(desired, d)
	}
	runtime.GC()
	rep := childReport{Speakers: last - first, BaselineKB: rssKB()}
	rep.BaseHeapKB = heapKB()
	fmt.Println("ready")
	stdin := bufio.NewReader(os.Stdin)
	line, err := stdin.ReadString('\n')
	if err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	startNS, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "go ")), 10, 64)
	if err != nil {
		return fmt.Errorf("bad go line %q", line)
	}
	start := time.Unix(0, startNS)

	speakers := make([]*routing.Speaker, len(desired))
	var wg sync.WaitGroup
	errs := make(chan error, len(desired))
	for k := range desired {
		speakers[k] = routing.NewSpeaker(routing.Config{Logger: log})
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			if err := speakers[k].Reconcile(context.Background(), desired[k]); err != nil {
				errs <- fmt.Errorf("starting %s: %w", desired[k].NodeName, err)
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	defer func() {
		for _, s := range speakers {
			s.Stop()
		}
	}()
	pending := map[int]bool{}
	for k := range speakers {
		pending[k] = true
	}
	deadline := start.Add(timeout)
	var done time.Time
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			for k := range pending {
				st, err := speakers[k].Status(context.Background())
				rib, _ := speakers[k].RIB(context.Background())
				return fmt.Errorf("%d speakers still lack blocks after %s; %s has %d of %d blocks, sessions %+v (%v)", len(pending), timeout, desired[k].NodeName, len(rib), n, st, err)
			}
		}
		for k := range pending {
			rib, err := speakers[k].RIB(context.Background())
			if err == nil && len(rib) >= n-1 { // every block but its own
				delete(pending, k)
				done = time.Now()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep.ConvergedMS = float64(done.Sub(start).Microseconds()) / 1000
	runtime.GC()
	rep.RSSKB, rep.HeapKB = rssKB(), heapKB()
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	_, _ = io.Copy(io.Discard, stdin) // until the parent closes stdin
	return nil
}

func rssKB() int {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.Atoi(f[1])
				return v
			}
		}
	}
	return 0
}

func heapKB() int {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapInuse / 1024)
}

// child is one running child process.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	what string
}

func startChild(self, netns string, n, rrs, first, last int) (*child, error) {
	argv := []string{"netns", "exec", netns, self, "child",
		"-n", strconv.Itoa(n), "-rrs", strconv.Itoa(rrs), "-first", strconv.Itoa(first), "-last", strconv.Itoa(last)}
	cmd := exec.Command("ip", argv...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting child %d-%d: %w", first, last, err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(out), what: fmt.Sprintf("%d-%d", first, last)}
	line, err := c.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("child %s: %q, %v", c.what, line, err)
	}
	return c, nil
}

// scaleResult is one cold start of an n-host cluster.
type scaleResult struct {
	N, RRs      int
	ConvergedMS float64
	PerHostKB   float64 // RSS growth per non-reflector speaker
	PerRRKB     float64 // RSS growth per reflector (0 for a mesh)
	HostHeapKB  float64
	RRHeapKB    float64
}

// runScale cold-starts an n-host cluster in netns: reflectors (if any) in
// one process, the other hosts in another, so that each process's RSS
// growth divided by its speakers is the memory per reflector and per host.
func runScale(self, netns string, n, rrs int) (scaleResult, error) {
	res := scaleResult{N: n, RRs: rrs}
	type part struct{ first, last int }
	parts := []part{{rrs, n}}
	if rrs > 0 {
		parts = []part{{0, rrs}, {rrs, n}}
	}
	var children []*child
	defer func() {
		for _, c := range children {
			_ = c.in.Close()
			_ = c.cmd.Wait()
		}
	}()
	for _, p := range parts {
		c, err := startChild(self, netns, n, rrs, p.first, p.last)
		if err != nil {
			return res, err
		}
		children = append(children, c)
	}
	start := time.Now().Add(50 * time.Millisecond)
	for _, c := range children {
		if _, err := fmt.Fprintf(c.in, "go %d\n", start.UnixNano()); err != nil {
			return res, err
		}
	}
	for i, c := range children {
		line, err := c.out.ReadString('\n')
		if err != nil {
			return res, fmt.Errorf("child %s: %w", c.what, err)
		}
		var rep childReport
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			return res, fmt.Errorf("child %s: %q: %w", c.what, line, err)
		}
		if rep.ConvergedMS > res.ConvergedMS {
			res.ConvergedMS = rep.ConvergedMS
		}
		perRSS := float64(rep.RSSKB-rep.BaselineKB) / float64(rep.Speakers)
		perHeap := float64(rep.HeapKB-rep.BaseHeapKB) / float64(rep.Speakers)
		if rrs > 0 && i == 0 {
			res.PerRRKB, res.RRHeapKB = perRSS, perHeap
		} else {
			res.PerHostKB, res.HostHeapKB = perRSS, perHeap
		}
	}
	return res, nil
}
