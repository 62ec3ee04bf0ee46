// Package ipam_test runs IPAM as a cluster does: separate processes on
// several (simulated) hosts allocating at once against one real etcd, then
// checks the result with servalctl's own ipam commands.
//
// The test binary re-executes itself as the worker processes: with
// SERVAL_IPAM_CHILD set, TestMain runs one worker instead of the tests.
package ipam_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/cli"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/kubetest"
	"github.com/servalnet/serval/internal/testbin"
)

const (
	envChild    = "SERVAL_IPAM_CHILD" // "alloc" or "release"
	envEndpoint = "SERVAL_ETCD_ENDPOINTS"
	envHost     = "SERVAL_IPAM_HOST"
	envProc     = "SERVAL_IPAM_PROC"
	envCount    = "SERVAL_IPAM_COUNT"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		if err := child(mode); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The Kubernetes API server of the kubernetes backend's tests starts
	// only when one of them asks for it.
	kubetest.Main(m)
}

// backend says where a datastore is, to a worker and to servalctl.
type backend struct {
	env  []string // for a worker process
	args []string // for servalctl
}

// openDatastore is a worker's datastore: the Kubernetes API server of
// $KUBECONFIG when SERVAL_DATASTORE_TYPE is kubernetes, else the etcd of
// SERVAL_ETCD_ENDPOINTS.
func openDatastore() (datastore.Interface, error) {
	if os.Getenv(datastore.EnvType) == datastore.TypeKubernetes {
		return kubernetes.Open("", "serval-ipam-test", nil)
	}
	return datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{os.Getenv(envEndpoint)}})
}

// child is one worker process: it says "ready", waits for "go" on stdin
// (so that all workers start together), then allocates (one handle per
// simulated workload) or releases, printing each address it got.
func child(mode string) error {
	ds, err := openDatastore()
	if err != nil {
		return err
	}
	defer ds.Close()
	host, proc := os.Getenv(envHost), os.Getenv(envProc)
	n, err := strconv.Atoi(os.Getenv(envCount))
	if err != nil {
		return fmt.Errorf("%s: %w", envCount, err)
	}
	c := ipam.New(ds, ipam.Config{})
	ctx := context.Background()
	if err := testbin.WorkerReady(); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := range n {
		handle := fmt.Sprintf("serval-net.p%s-w%d", proc, i)
		switch mode {
		case "alloc":
			res, err := c.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: handle, Node: host,
				Attrs: map[string]string{ipam.AttrNode: host, ipam.AttrWorkload: fmt.Sprintf("w%d", i)}})
			if err != nil {
				return err
			}
			fmt.Fprintln(out, res.IPv4[0])
		case "release":
			if err := c.ReleaseByHandle(ctx, handle); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %q", mode)
		}
	}
	return nil
}

type worker struct {
	*testbin.Worker
	host string
}

// startWorkers starts procs workers, two per host, and returns once all
// are ready.
func startWorkers(t *testing.T, b backend, mode string, procs, each int) []worker {
	t.Helper()
	var ws []worker
	for i := range procs {
		host := fmt.Sprintf("host%d", i/2)
		env := append([]string{envChild + "=" + mode, envHost + "=" + host,
			envProc + "=" + strconv.Itoa(i), envCount + "=" + strconv.Itoa(each)}, b.env...)
		ws = append(ws, worker{testbin.StartWorker(t, env...), host})
	}
	for i, w := range ws {
		if err := w.WaitReady(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	return ws
}

// run releases the workers at once and returns what each printed.
func run(t *testing.T, ws []worker) [][]string {
	t.Helper()
	for _, w := range ws {
		if err := w.Go(); err != nil {
			t.Fatal(err)
		}
	}
	lines := make([][]string, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { lines[i] = strings.Fields(w.Output()) })
	}
	wg.Wait()
	for i, w := range ws {
		if err := w.Cmd.Wait(); err != nil {
			t.Errorf("worker %d (%s): %v\n%s", i, w.host, err, w.Stderr.String())
		}
	}
	return lines
}

// startCluster starts an etcd for t, with an IP pool of cidr in /26
// blocks and a Node for each host, and returns where it is and a
// datastore on it. Both are closed when t ends.
func startCluster(t *testing.T, ctx context.Context, cidr string, hosts ...string) (backend, datastore.Interface) {
	t.Helper()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: t.TempDir(),
		ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	b := backend{
		env:  []string{datastore.EnvType + "=" + datastore.TypeEtcdV3, envEndpoint + "=" + srv.ClientURL()},
		args: []string{"--datastore-type", datastore.TypeEtcdV3, "--etcd-endpoints", srv.ClientURL()},
	}
	populate(t, ctx, ds, cidr)
	for _, h := range hosts {
		if _, err := ds.Create(ctx, &api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: h}}); err != nil {
			t.Fatal(err)
		}
	}
	return b, ds
}

// populate writes an IP pool of cidr in /26 blocks.
func populate(t *testing.T, ctx context.Context, ds datastore.Interface, cidr string) {
	t.Helper()
	if _, err := ds.Create(ctx, &api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "pool1"},
		Spec: api.IPPoolSpec{CIDR: cidr, BlockSize: 26}}); err != nil {
		t.Fatal(err)
	}
}

func servalctl(t *testing.T, b backend, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), append(args, b.args...), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return out.String() + errOut.String(), code
}

var poolLine = regexp.MustCompile(`(?m)^IP Pool\s+10\.65\.0\.0/16\s+65536\s+(\d+) \(`)

func inUse(t *testing.T, b backend) int {
	t.Helper()
	out, code := servalctl(t, b, "ipam", "show")
	m := poolLine.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("ipam show: exit %d, output:\n%s", code, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestConcurrentProcesses: 8 processes on 4 hosts allocate 250 addresses
// each, all at once, from one /16 pool in /26 blocks.
func TestConcurrentProcesses(t *testing.T) {
	testConcurrentProcesses(t, 60*time.Second, startCluster)
}

func testConcurrentProcesses(t *testing.T, timeout time.Duration, newCluster func(*testing.T, context.Context, string, ...string) (backend, datastore.Interface)) {
	const procs, each = 8, 250
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pool := netip.MustParsePrefix("10.65.0.0/16")
	var hosts []string
	for h := range procs / 2 {
		hosts = append(hosts, fmt.Sprint("host", h))
	}
	endpoint, ds := newCluster(t, ctx, pool.String(), hosts...)

	ws := startWorkers(t, endpoint, "alloc", procs, each)
	start := time.Now()
	lines := run(t, ws)
	elapsed := time.Since(start)
	t.Logf("%d processes allocated %d addresses in %v (%.0f/s)", procs, procs*each, elapsed.Round(time.Millisecond), float64(procs*each)/elapsed.Seconds())
	if t.Failed() {
		t.FailNow()
	}

	res, err := ds.List(ctx, datastore.ListOptions{Kind: "IPAMBlock"})
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Prefix]string{}
	for _, r := range res.Items {
		b := r.(*api.IPAMBlock)
		owner[netip.MustParsePrefix(b.Spec.CIDR)] = strings.TrimPrefix(*b.Spec.Affinity, api.AffinityPrefix)
	}
	seen := map[netip.Addr]int{}
	for i, ls := range lines {
		if len(ls) != each {
			t.Errorf("worker %d printed %d addresses, want %d", i, len(ls), each)
		}
		for _, l := range ls {
			a, err := netip.ParseAddr(l)
			if err != nil {
				t.Fatalf("worker %d printed %q", i, l)
			}
			if prev, dup := seen[a]; dup {
				t.Errorf("%s handed to worker %d and worker %d", a, prev, i)
			}
			seen[a] = i
			if !pool.Contains(a) {
				t.Errorf("%s is outside the pool %s", a, pool)
			}
			if o := owner[netip.PrefixFrom(a, 26).Masked()]; o != ws[i].host {
				t.Errorf("%s of worker %d on %s is in a block affine to %q", a, i, ws[i].host, o)
			}
		}
	}
	if len(seen) != procs*each {
		t.Errorf("%d distinct addresses, want %d", len(seen), procs*each)
	}
	perHost := map[string]int{}
	for _, o := range owner {
		perHost[o]++
	}
	t.Logf("blocks per host: %v", perHost)
	for h, n := range perHost {
		if n < 8 { // 500 addresses need at least 8 blocks of 64
			t.Errorf("%s owns %d blocks, fewer than its 500 addresses need", h, n)
		}
	}

	if n := inUse(t, endpoint); n != procs*each {
		t.Errorf("ipam show says %d in use, want %d", n, procs*each)
	}
	out, code := servalctl(t, endpoint, "ipam", "show", "--show-blocks")
	if code != 0 || strings.Count(out, "\nBlock ") != len(owner) {
		t.Errorf("ipam show --show-blocks (exit %d) does not list %d blocks:\n%s", code, len(owner), out)
	}
	var some netip.Addr
	for a := range seen {
		some = a
		break
	}
	out, _ = servalctl(t, endpoint, "ipam", "show", "--ip", some.String())
	if !strings.Contains(out, "is in use, held by handle \"serval-net.p") || !strings.Contains(out, "node: "+ws[seen[some]].host) {
		t.Errorf("ipam show --ip %s:\n%s", some, out)
	}
	// No endpoints were written: check reports every address as leaked.
	out, code = servalctl(t, endpoint, "ipam", "check")
	if code != 1 || strings.Count(out, "leaked: ") != procs*each {
		t.Errorf("ipam check before release: exit %d, %d leaked lines; want 1 and %d", code, strings.Count(out, "leaked: "), procs*each)
	}

	ws = startWorkers(t, endpoint, "release", procs, each)
	start = time.Now()
	run(t, ws)
	t.Logf("%d processes released %d handles in %v", procs, procs*each, time.Since(start).Round(time.Millisecond))
	if n := inUse(t, endpoint); n != 0 {
		t.Errorf("ipam show after release says %d in use, want 0", n)
	}
	if out, code := servalctl(t, endpoint, "ipam", "check"); code != 0 || !strings.Contains(out, "no problems found") {
		t.Errorf("ipam check after release: exit %d\n%s", code, out)
	}
	hs, err := ds.List(ctx, datastore.ListOptions{Kind: "IPAMHandle"})
	if err != nil || len(hs.Items) != 0 {
		t.Errorf("%d handles left after release (%v)", len(hs.Items), err)
	}
}

// TestReleaseCommand: servalctl ipam release refuses an address a
// WorkloadEndpoint uses unless --force, and says when there is nothing
// to release.
func TestReleaseCommand(t *testing.T) {
	ctx := context.Background()
	endpoint, ds := startCluster(t, ctx, "10.65.0.0/16", "host1")
	c := ipam.New(ds, ipam.Config{})
	res, err := c.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "net.c1", Node: "host1"})
	if err != nil {
		t.Fatal(err)
	}
	ip := res.IPv4[0].String()
	if _, err := ds.Create(ctx, &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: api.WorkloadEndpointName("host1", "k8s", "web", "eth0")},
		Spec:       api.WorkloadEndpointSpec{Node: "host1", Orchestrator: "k8s", Pod: "web", Endpoint: "eth0", IPNetworks: []string{ip + "/32"}}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ipam", "check"}, 0, "no problems found"},
		{[]string{"ipam", "release", "--ip", ip}, 1, "is used by WorkloadEndpoint default/host1-k8s-web-eth0: not released"},
		{[]string{"ipam", "release", "--ip", ip, "--force"}, 0, `Released ` + ip + ` (was held by handle "net.c1")`},
		{[]string{"ipam", "release", "--ip", ip}, 1, "is not allocated: nothing to release"},
		{[]string{"ipam", "check"}, 1, "not-allocated: WorkloadEndpoint default/host1-k8s-web-eth0 has " + ip},
		{[]string{"ipam", "release", "--ip", "nonsense"}, 2, `--ip "nonsense" is not an IP address`},
		{[]string{"ipam", "show", "--ip", "192.0.2.1"}, 0, "IP 192.0.2.1 is not in any IP pool"},
	}
	for _, s := range steps {
		out, code := servalctl(t, endpoint, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("servalctl %s: exit %d, want %d saying %q; output:\n%s", strings.Join(s.args, " "), code, s.code, s.want, out)
		}
	}
}
