package reliability

import (
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
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/testbin"
)

const (
	envIPAMChild    = "SERVAL_REL_IPAM_CHILD" // the etcd endpoint
	envIPAMHost     = "SERVAL_REL_IPAM_HOST"
	envIPAMProc     = "SERVAL_REL_IPAM_PROC"
	ipamPerWorker   = 40
	ipamWorkers     = 6
	ipamPoolCIDR    = "10.66.0.0/22" // small: 16 blocks of /26, so hosts contend for them
	ipamBlockPrefix = 26
)

// ipamChild is one worker: it allocates an address (one handle per
// workload, as the CNI plugin does), then writes the workload's endpoint
// with it, then prints the address, ipamPerWorker times — until the test
// SIGKILLs it somewhere in the middle.
func ipamChild() error {
	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{os.Getenv(envIPAMChild)}})
	if err != nil {
		return err
	}
	defer ds.Close()
	host, proc := os.Getenv(envIPAMHost), os.Getenv(envIPAMProc)
	c := ipam.New(ds, ipam.Config{})
	ctx := context.Background()
	if err := testbin.WorkerReady(); err != nil {
		return err
	}
	for i := range ipamPerWorker {
		wl := fmt.Sprintf("p%s-w%d", proc, i)
		res, err := c.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "rel." + wl, Node: host,
			Attrs: map[string]string{ipam.AttrNode: host, ipam.AttrWorkload: wl}})
		if err != nil {
			return err
		}
		wep := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"},
			ObjectMeta: api.ObjectMeta{Namespace: "default"},
			Spec: api.WorkloadEndpointSpec{Orchestrator: "rel", Workload: wl, Node: host, Endpoint: "eth0",
				InterfaceName: "cali" + wl, IPNetworks: []string{res.IPv4[0].String() + "/32"}}}
		wep.SetDefaults()
		if _, err := ds.Create(ctx, wep); err != nil {
			return fmt.Errorf("endpoint of %s: %w", wl, err)
		}
		fmt.Println(res.IPv4[0], wl)
	}
	return nil
}

func ipamctl(endpoint string, args ...string) (string, int) {
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), append(args, "--etcd-endpoints", endpoint), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return out.String() + errOut.String(), code
}

var (
	leakedRE      = regexp.MustCompile(`(?m)^leaked: .*?(\d+\.\d+\.\d+\.\d+)`)
	handleCountRE = regexp.MustCompile(`(?m)^handle-count: handle "([^"]+)"`)
)

// TestIPAMKilledMidAllocation: 6 processes on 3 hosts allocate at once
// from a small pool; half are SIGKILLed mid-way. No address is ever
// held twice (every block's allocations and every handle are checked),
// `servalctl ipam check` reports exactly what the kills left (addresses
// allocated whose endpoint was never written, and handles counting an
// address their block never got), and releasing them (`servalctl ipam
// release`, ReleaseByHandle) recovers everything: check finds nothing.
func TestIPAMKilledMidAllocation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: t.TempDir(),
		ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	endpoint := srv.ClientURL()
	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if _, err := ds.Create(ctx, &api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "pool1"},
		Spec: api.IPPoolSpec{CIDR: ipamPoolCIDR, BlockSize: ipamBlockPrefix}}); err != nil {
		t.Fatal(err)
	}
	for h := range ipamWorkers / 2 {
		if _, err := ds.Create(ctx, &api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: fmt.Sprint("host", h)}}); err != nil {
			t.Fatal(err)
		}
	}

	ws := make([]*testbin.Worker, ipamWorkers)
	for i := range ws {
		ws[i] = testbin.StartWorker(t, envIPAMChild+"="+endpoint, envIPAMHost+"="+fmt.Sprint("host", i/2), envIPAMProc+"="+strconv.Itoa(i))
		if err := ws[i].WaitReady(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	lines := make([][]string, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		_ = w.Go()
		wg.Go(func() { lines[i] = strings.Split(strings.TrimSpace(w.Output()), "\n") })
	}
	// Kill the even workers (one per host) at staggered moments: each
	// dies somewhere inside an allocation, an endpoint write, or between.
	for i := 0; i < ipamWorkers; i += 2 {
		time.Sleep(time.Duration(150+40*i) * time.Millisecond)
		_ = ws[i].Cmd.Process.Kill()
	}
	wg.Wait()
	printed := map[netip.Addr]string{} // address → workload, as the workers said
	for i, w := range ws {
		err := w.Cmd.Wait()
		if i%2 == 1 && err != nil {
			t.Errorf("worker %d (not killed): %v\n%s", i, err, w.Stderr.String())
		}
		if i%2 == 0 && err == nil {
			t.Logf("worker %d finished before its kill: raise ipamPerWorker", i)
		}
		for _, l := range lines[i] {
			f := strings.Fields(l)
			if len(f) != 2 {
				continue
			}
			a := netip.MustParseAddr(f[0])
			if prev, dup := printed[a]; dup {
				t.Errorf("%s handed to %s and to %s", a, prev, f[1])
			}
			printed[a] = f[1]
		}
	}

	// Every block: each ordinal allocated at most once and not also free;
	// every allocation's handle exists and counts it.
	blocks, err := ds.List(ctx, datastore.ListOptions{Kind: "IPAMBlock"})
	if err != nil {
		t.Fatal(err)
	}
	holder := map[netip.Addr]string{}        // address → handle
	perHandle := map[string]map[string]int{} // handle → block → count
	for _, r := range blocks.Items {
		b := r.(*api.IPAMBlock)
		cidr := netip.MustParsePrefix(b.Spec.CIDR)
		free := map[int]bool{}
		for _, o := range b.Spec.Unallocated {
			if free[o] {
				t.Errorf("block %s lists ordinal %d as free twice", cidr, o)
			}
			free[o] = true
		}
		a := cidr.Addr()
		for o, attr := range b.Spec.Allocations {
			addr := a
			a = a.Next()
			if attr == nil {
				if !free[o] {
					t.Errorf("block %s: ordinal %d (%s) is neither allocated nor free", cidr, o, addr)
				}
				continue
			}
			if free[o] {
				t.Errorf("block %s: %s is allocated and free at once: it would be handed out twice", cidr, addr)
			}
			if *attr < 0 || *attr >= len(b.Spec.Attributes) || b.Spec.Attributes[*attr].HandleID == nil {
				t.Errorf("block %s: %s has no handle", cidr, addr)
				continue
			}
			h := *b.Spec.Attributes[*attr].HandleID
			holder[addr] = h
			if perHandle[h] == nil {
				perHandle[h] = map[string]int{}
			}
			perHandle[h][b.Spec.CIDR]++
		}
	}
	handles, err := ds.List(ctx, datastore.ListOptions{Kind: "IPAMHandle"})
	if err != nil {
		t.Fatal(err)
	}
	// A kill between an allocation's handle write and its block write
	// leaves a handle counting an address its block does not hold: not a
	// double assignment, but garbage that check must report.
	var wantCount []string
	for _, r := range handles.Items {
		h := r.(*api.IPAMHandle)
		for cidr, n := range h.Spec.Block {
			if got := perHandle[h.Spec.HandleID][cidr]; got != n {
				wantCount = append(wantCount, h.Spec.HandleID)
				if got > n {
					t.Errorf("handle %s counts %d in block %s, fewer than the %d the block holds for it", h.Spec.HandleID, n, cidr, got)
				}
			}
		}
		delete(perHandle, h.Spec.HandleID)
	}
	for h := range perHandle {
		t.Errorf("handle %s holds addresses but has no IPAMHandle", h)
	}
	for a, wl := range printed {
		if holder[a] != "rel."+wl {
			t.Errorf("%s, given to %s, is held by %q in its block", a, wl, holder[a])
		}
	}
	// Endpoints: no two with one address, each address held.
	weps, err := ds.List(ctx, datastore.ListOptions{Kind: "WorkloadEndpoint"})
	if err != nil {
		t.Fatal(err)
	}
	used := map[netip.Addr]bool{}
	for _, r := range weps.Items {
		w := r.(*api.WorkloadEndpoint)
		a := netip.MustParsePrefix(w.Spec.IPNetworks[0]).Addr()
		if used[a] {
			t.Errorf("two endpoints use %s", a)
		}
		used[a] = true
		if holder[a] != "rel."+w.Spec.Workload {
			t.Errorf("endpoint %s uses %s, held by %q", w.Name, a, holder[a])
		}
	}
	var wantLeaked []string
	for a := range holder {
		if !used[a] {
			wantLeaked = append(wantLeaked, a.String())
		}
	}
	t.Logf("%d addresses allocated, %d endpoints; the kills left %d addresses without an endpoint and %d handles counting an address they never got",
		len(holder), len(used), len(wantLeaked), len(wantCount))

	out, code := ipamctl(endpoint, "ipam", "check")
	var gotLeaked, gotCount []string
	for _, m := range leakedRE.FindAllStringSubmatch(out, -1) {
		gotLeaked = append(gotLeaked, m[1])
	}
	for _, m := range handleCountRE.FindAllStringSubmatch(out, -1) {
		gotCount = append(gotCount, m[1])
	}
	if (len(wantLeaked)+len(wantCount) > 0) != (code == 1) {
		t.Errorf("ipam check exit %d with %d problems expected:\n%s", code, len(wantLeaked)+len(wantCount), out)
	}
	if strings.Join(sorted(gotLeaked), " ") != strings.Join(sorted(wantLeaked), " ") {
		t.Errorf("ipam check reports leaked %v, want %v:\n%s", gotLeaked, wantLeaked, out)
	}
	if strings.Join(sorted(gotCount), " ") != strings.Join(sorted(wantCount), " ") {
		t.Errorf("ipam check reports handle counts off for %v, want %v:\n%s", gotCount, wantCount, out)
	}
	// Recovery: servalctl ipam release for each leaked address; the
	// owner's release by handle (what the runtime's retried CNI DEL does)
	// for each miscounted handle.
	for _, a := range gotLeaked {
		if out, code := ipamctl(endpoint, "ipam", "release", "--ip", a); code != 0 {
			t.Errorf("ipam release --ip %s: exit %d\n%s", a, code, out)
		}
	}
	c := ipam.New(ds, ipam.Config{})
	for _, h := range gotCount {
		if err := c.ReleaseByHandle(ctx, h); err != nil {
			t.Errorf("ReleaseByHandle(%s): %v", h, err)
		}
	}
	if out, code := ipamctl(endpoint, "ipam", "check"); code != 0 || !strings.Contains(out, "no problems found") {
		t.Errorf("ipam check after releasing what the kills left: exit %d\n%s", code, out)
	}
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}
