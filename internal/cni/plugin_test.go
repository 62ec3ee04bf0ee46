package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
)

// fakeIPAM hands out addresses from a small list, in order.
type fakeIPAM struct {
	mu      sync.Mutex
	free4   []netip.Addr
	free6   []netip.Addr
	handles map[string][]netip.Addr
	failAdd error
	pools   [][]string // the IPv4 and IPv6 pools of the last AutoAssign
}

func newFakeIPAM(n4, n6 int) *fakeIPAM {
	f := &fakeIPAM{handles: map[string][]netip.Addr{}}
	a := netip.MustParseAddr("10.65.0.1")
	for range n4 {
		f.free4 = append(f.free4, a)
		a = a.Next()
	}
	b := netip.MustParseAddr("fd00:65::1")
	for range n6 {
		f.free6 = append(f.free6, b)
		b = b.Next()
	}
	return f
}

func (f *fakeIPAM) AutoAssign(_ context.Context, a ipam.AutoAssignArgs) (*ipam.AssignResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd != nil {
		return nil, f.failAdd
	}
	f.pools = [][]string{a.IPv4Pools, a.IPv6Pools}
	if held := f.handles[a.Handle]; a.ReuseHandle && len(held) > 0 {
		res := &ipam.AssignResult{Reused: true}
		for _, h := range held {
			if h.Is4() {
				res.IPv4 = append(res.IPv4, h)
			} else {
				res.IPv6 = append(res.IPv6, h)
			}
		}
		if (a.Num4 == 0 || len(res.IPv4) > 0) && (a.Num6 == 0 || len(res.IPv6) > 0) {
			return res, nil
		}
	}
	res := &ipam.AssignResult{}
	// Like the real one, a partial allocation stays with the handle.
	for range a.Num4 {
		if len(f.free4) == 0 {
			return nil, fmt.Errorf("%w: no free IPv4 address in pool \"fake\"", ipam.ErrPoolsExhausted)
		}
		res.IPv4 = append(res.IPv4, f.free4[0])
		f.handles[a.Handle] = append(f.handles[a.Handle], f.free4[0])
		f.free4 = f.free4[1:]
	}
	for range a.Num6 {
		if len(f.free6) == 0 {
			return nil, fmt.Errorf("%w: no free IPv6 address in pool \"fake6\"", ipam.ErrPoolsExhausted)
		}
		res.IPv6 = append(res.IPv6, f.free6[0])
		f.handles[a.Handle] = append(f.handles[a.Handle], f.free6[0])
		f.free6 = f.free6[1:]
	}
	return res, nil
}

func (f *fakeIPAM) AssignIP(_ context.Context, a ipam.AssignIPArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ips := range f.handles {
		for _, ip := range ips {
			if ip == a.IP {
				return fmt.Errorf("%w: %s", ipam.ErrInUse, a.IP)
			}
		}
	}
	f.handles[a.Handle] = append(f.handles[a.Handle], a.IP)
	return nil
}

func (f *fakeIPAM) ReleaseByHandle(_ context.Context, h string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ip := range f.handles[h] {
		if ip.Is4() {
			f.free4 = append(f.free4, ip)
		} else {
			f.free6 = append(f.free6, ip)
		}
	}
	delete(f.handles, h)
	return nil
}

func (f *fakeIPAM) ReleaseIPs(context.Context, ...netip.Addr) ([]netip.Addr, error) {
	return nil, errors.New("not used")
}

func (f *fakeIPAM) IPsByHandle(_ context.Context, h string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.Addr(nil), f.handles[h]...), nil
}

func (f *fakeIPAM) held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ips := range f.handles {
		n += len(ips)
	}
	return n
}

// fakeDataplane records the attachments it was asked to make.
type fakeDataplane struct {
	links     map[string]*LinkSpec
	failSetup error
	// failConfigure fails Setup only (CreateLink succeeds).
	failConfigure error
	calls         []string
}

func (d *fakeDataplane) HostMTU() (int, error) { return 9000, nil }

func (d *fakeDataplane) Setup(s *LinkSpec) (*LinkInfo, error) {
	d.calls = append(d.calls, "setup "+s.HostVeth)
	if d.failSetup != nil {
		return nil, d.failSetup
	}
	if d.failConfigure != nil {
		delete(d.links, s.HostVeth) // as Setup removes the veth it fails to configure
		return nil, d.failConfigure
	}
	d.links[s.HostVeth] = s
	return &LinkInfo{HostMAC: "ee:ee:ee:ee:ee:ee", ContainerMAC: "02:00:00:00:00:01"}, nil
}

func (d *fakeDataplane) Teardown(n string) error {
	d.calls = append(d.calls, "teardown "+n)
	delete(d.links, n)
	return nil
}

func (d *fakeDataplane) Check(s *LinkSpec) error {
	if _, ok := d.links[s.HostVeth]; !ok {
		return fmt.Errorf("no interface %s", s.HostVeth)
	}
	return nil
}

// creatingDataplane is fakeDataplane with CreateLink, so that ADD
// creates the veth while IPAM runs (as NetlinkDataplane does).
type creatingDataplane struct{ *fakeDataplane }

func (d creatingDataplane) CreateLink(s *LinkSpec) error {
	d.calls = append(d.calls, "create "+s.HostVeth)
	if d.failSetup != nil {
		return d.failSetup
	}
	if s.ContainerMAC == "" {
		s.ContainerMAC = "02:00:00:00:00:01" // what Setup reports
	}
	d.links[s.HostVeth] = s
	return nil
}

// flakyStore fails writes of WorkloadEndpoints when told to.
type flakyStore struct {
	datastore.Interface
	failCreate error
}

func (s *flakyStore) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	if s.failCreate != nil {
		return nil, s.failCreate
	}
	return s.Interface.Create(ctx, r)
}

func (s *flakyStore) Close() error { return nil } // shared by every command of a test

type rig struct {
	ipam   *fakeIPAM
	dp     *fakeDataplane
	ds     *flakyStore
	plugin *Plugin
	args   *skel.CmdArgs
	out    bytes.Buffer
}

func newRig(t *testing.T, n4, n6 int) *rig {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	r := &rig{ipam: newFakeIPAM(n4, n6), dp: &fakeDataplane{links: map[string]*LinkSpec{}},
		ds: &flakyStore{Interface: datastore.NewMemory(log)}}
	open := func(*NetConf, *slog.Logger) (datastore.Interface, error) { return r.ds, nil }
	r.args = &skel.CmdArgs{ContainerID: "c1", Netns: "/var/run/netns/w1", IfName: "eth0"}
	ip := &IPAMPlugin{Log: log, OpenDatastore: open,
		NewIPAM: func(datastore.Interface, *slog.Logger) (ipam.Interface, error) { return r.ipam, nil }}
	r.plugin = &Plugin{Log: log, Stdout: &r.out, OpenDatastore: open, IPAM: &InProcessIPAM{Plugin: ip, Args: r.args}, Dataplane: r.dp}
	return r
}

func (r *rig) cmd(f func(*skel.CmdArgs) error, conf string, containerID, cniArgs string) error {
	r.args.ContainerID = containerID
	r.args.Args = cniArgs
	r.args.StdinData = []byte(conf)
	r.out.Reset()
	return f(r.args)
}

func (r *rig) endpoints(t *testing.T) []*api.WorkloadEndpoint {
	t.Helper()
	l, err := r.ds.List(context.Background(), datastore.ListOptions{Kind: "WorkloadEndpoint"})
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.WorkloadEndpoint
	for _, it := range l.Items {
		out = append(out, it.(*api.WorkloadEndpoint))
	}
	return out
}

// The IPAM lock is a temporary file, not the host's.
// testConf's mtu_file can never exist (/dev/null is no directory), so the
// MTU comes from the host's route whatever serval-node wrote on this machine.
const testConf = `{"cniVersion":"1.0.0","name":"net1","type":"serval","nodename":"host1","ipam_lock_file":"/tmp/svt-cni-unit-ipam.lock",
	"mtu_file":"/dev/null/serval-mtu",
	"labels":{"env":"prod"},"profiles":["base"],
	"ipam":{"type":"serval-ipam","assign_ipv6":"true"}}`

func TestAddDelWithFakes(t *testing.T) {
	t.Run("veth made by Setup", func(t *testing.T) { testAddDelWithFakes(t, false) })
	// The veth is created while IPAM runs and the endpoint written while
	// Setup configures it.
	t.Run("veth while IPAM runs", func(t *testing.T) { testAddDelWithFakes(t, true) })
}

func testAddDelWithFakes(t *testing.T, creating bool) {
	r := newRig(t, 4, 4)
	if creating {
		r.plugin.Dataplane = creatingDataplane{r.dp}
	}
	if err := r.cmd(r.plugin.Add, testConf, "c1", "label.app=web"); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := current.NewResult(r.out.Bytes())
	if err != nil {
		t.Fatalf("result: %v\n%s", err, r.out.String())
	}
	var got []string
	for _, ip := range res.(*current.Result).IPs {
		got = append(got, fmt.Sprintf("%s gw %s if %d", ip.Address.String(), ip.Gateway, *ip.Interface))
	}
	want := []string{"10.65.0.1/32 gw 169.254.1.1 if 1", "fd00:65::1/128 gw fe80::ecee:eeff:feee:eeee if 1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("result IPs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	veth := VethName("cali", "c1")
	if s := r.dp.links[veth]; s == nil || s.MTU != 9000 || len(s.Addrs) != 2 {
		t.Errorf("dataplane = %+v", r.dp.links)
	}
	weps := r.endpoints(t)
	if len(weps) != 1 {
		t.Fatalf("endpoints = %d", len(weps))
	}
	w := weps[0]
	if w.Name != "host1-cni-c1-eth0" || w.Namespace != "default" || w.Spec.InterfaceName != veth ||
		fmt.Sprint(w.Spec.IPNetworks) != "[10.65.0.1/32 fd00:65::1/128]" || w.Spec.MAC != "02:00:00:00:00:01" ||
		w.Labels["app"] != "web" || w.Labels["env"] != "prod" || fmt.Sprint(w.Spec.Profiles) != "[base]" {
		t.Errorf("endpoint = %+v %+v", w.ObjectMeta, w.Spec)
	}
	// CHECK with the result as prevResult.
	var conf map[string]any
	_ = json.Unmarshal([]byte(testConf), &conf)
	var prev map[string]any
	_ = json.Unmarshal(r.out.Bytes(), &prev)
	conf["prevResult"] = prev
	withPrev, _ := json.Marshal(conf)
	if err := r.cmd(r.plugin.Check, string(withPrev), "c1", ""); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	for i := range 2 {
		if err := r.cmd(r.plugin.Del, testConf, "c1", ""); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	if n := r.ipam.held(); n != 0 || len(r.dp.links) != 0 || len(r.endpoints(t)) != 0 {
		t.Errorf("after DEL: %d addresses held, links %v, %d endpoints", n, r.dp.links, len(r.endpoints(t)))
	}
	if err := r.cmd(r.plugin.Check, string(withPrev), "c1", ""); err == nil {
		t.Errorf("CHECK after DEL succeeded")
	}
}

// TestAddFailureUndoes fails ADD at every step and checks that nothing is
// left behind and the runtime gets the right code and a message naming
// the step.
func TestAddFailureUndoes(t *testing.T) {
	tests := []struct {
		name     string
		n4       int
		conf     string
		setup    func(r *rig)
		wantCode uint
		wantMsg  string
	}{
		{"pools exhausted", 0, testConf, nil, ErrIPAM, "pools exhausted"},
		{"ipv6 exhausted after ipv4", 4, testConf, func(r *rig) { r.ipam.free6 = nil }, ErrIPAM, "no free IPv6 address"},
		{"datastore down in IPAM", 4, testConf, func(r *rig) {
			r.ipam.failAdd = fmt.Errorf("claiming a block: %w", datastore.ErrUnavailable)
		}, types.ErrTryAgainLater, "allocating addresses with IPAM plugin serval-ipam"},
		{"veth fails", 4, testConf, func(r *rig) { r.dp.failSetup = errors.New("creating veth: file exists") }, ErrDataplane, "setting up the workload's interface: creating veth"},
		{"veth configuration fails", 4, testConf, func(r *rig) { r.dp.failConfigure = errors.New("adding address: permission denied") },
			ErrDataplane, "setting up the workload's interface: adding address"},
		{"endpoint write fails", 4, testConf, func(r *rig) {
			r.ds.failCreate = fmt.Errorf("creating WorkloadEndpoint: %w", datastore.ErrUnavailable)
		}, types.ErrTryAgainLater, "writing WorkloadEndpoint"},
		{"endpoint rejected", 4, testConf, func(r *rig) { r.ds.failCreate = errors.New("permission denied") }, ErrDatastore, "permission denied"},
		{"bad config", 4, `{"cniVersion":"1.0.0","name":"net1","type":"serval","mtu":"big","ipam":{"type":"serval-ipam"}}`, nil,
			types.ErrInvalidNetworkConfig, "mtu"},
		{"bad args", 4, testConf, func(r *rig) { r.args.Args = "K8S_POD_NAME=Bad_Name" }, types.ErrInvalidEnvironmentVariables, "K8S_POD_NAME"},
	}
	for _, tt := range tests {
		for _, creating := range []bool{false, true} {
			name := tt.name
			if creating {
				name += "/veth while IPAM runs"
			}
			t.Run(name, func(t *testing.T) {
				testAddFailure(t, tt.n4, tt.conf, tt.setup, creating, tt.wantCode, tt.wantMsg)
			})
		}
	}
}

func testAddFailure(t *testing.T, n4 int, conf string, setup func(r *rig), creating bool, wantCode uint, wantMsg string) {
	r := newRig(t, n4, 4)
	if creating {
		r.plugin.Dataplane = creatingDataplane{r.dp}
	}
	r.args.ContainerID, r.args.StdinData = "c1", []byte(conf)
	if setup != nil {
		setup(r)
	}
	err := r.plugin.Add(r.args)
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("ADD err = %v, want a *types.Error", err)
	}
	if te.Code != wantCode || !strings.Contains(te.Msg, wantMsg) {
		t.Errorf("ADD err = code %d %q, want code %d containing %q", te.Code, te.Msg, wantCode, wantMsg)
	}
	if n := r.ipam.held(); n != 0 {
		t.Errorf("%d addresses left allocated", n)
	}
	if len(r.dp.links) != 0 {
		t.Errorf("interfaces left: %v", r.dp.links)
	}
	if n := len(r.endpoints(t)); n != 0 {
		t.Errorf("%d endpoints left", n)
	}
}

// TestDelLeavesNewerContainer: a late DEL of an old container of a pod
// must not remove what the pod's new container uses.
func TestDelLeavesNewerContainer(t *testing.T) {
	r := newRig(t, 4, 0)
	conf := `{"cniVersion":"1.0.0","name":"net1","type":"serval","nodename":"host1","ipam_lock_file":"/tmp/svt-cni-unit-ipam.lock","ipam":{"type":"serval-ipam"}}`
	pod := "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"
	if err := r.cmd(r.plugin.Add, conf, "old", pod); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd(r.plugin.Add, conf, "new", pod); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd(r.plugin.Del, conf, "old", pod); err != nil {
		t.Fatal(err)
	}
	weps := r.endpoints(t)
	if len(weps) != 1 || weps[0].Spec.ContainerID != "new" || weps[0].Name != "host1-k8s-web--0-eth0" {
		t.Fatalf("endpoints = %+v", weps)
	}
	if _, ok := r.dp.links[VethName("cali", "shop.web-0")]; !ok {
		t.Errorf("the new container's veth was removed")
	}
	held, _ := r.ipam.IPsByHandle(context.Background(), "net1.new")
	if old, _ := r.ipam.IPsByHandle(context.Background(), "net1.old"); len(old) != 0 || len(held) != 1 {
		t.Errorf("old handle holds %v, new %v", old, held)
	}
}

func TestStatus(t *testing.T) {
	r := newRig(t, 1, 0)
	conf := `{"cniVersion":"1.1.0","name":"net1","type":"serval","ipam":{"type":"serval-ipam"}}`
	if err := r.cmd(r.plugin.Status, conf, "", ""); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	r.plugin.OpenDatastore = func(*NetConf, *slog.Logger) (datastore.Interface, error) { return downStore{}, nil }
	err := r.cmd(r.plugin.Status, conf, "", "")
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with datastore down = %v, want code 50", err)
	}
}

type downStore struct{ datastore.Interface }

func (downStore) List(context.Context, datastore.ListOptions) (*datastore.ListResult, error) {
	return nil, fmt.Errorf("listing: %w", datastore.ErrUnavailable)
}
func (downStore) Close() error { return nil }

func TestIPAMPluginRequestedAndCheck(t *testing.T) {
	r := newRig(t, 4, 0)
	ip := r.plugin.IPAM.(*InProcessIPAM).Plugin
	var out bytes.Buffer
	ip.Stdout = &out
	conf := `{"cniVersion":"0.4.0","name":"net1","type":"bridge","nodename":"host1","ipam_lock_file":"/tmp/svt-cni-unit-ipam.lock","ipam":{"type":"serval-ipam"}}`
	args := &skel.CmdArgs{ContainerID: "c9", IfName: "eth0", Args: "IP=10.99.0.7", StdinData: []byte(conf)}
	if err := ip.Add(args); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, out.Bytes())
	if !strings.Contains(compact.String(), `{"version":"4","address":"10.99.0.7/32"}`) {
		t.Errorf("0.4.0 result = %s", compact.String())
	}
	if err := ip.Check(args); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	args.ContainerID = "c10"
	err := ip.Add(args)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != ErrIPAM || !strings.Contains(te.Msg, "address already in use") {
		t.Errorf("second claim of the address = %v", err)
	}
	held := r.ipam.handles
	keys := make([]string, 0, len(held))
	for k := range held {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[net1.c9]" {
		t.Errorf("handles = %v", keys)
	}
}

// TestAddOlderVersions: results reach older callers in their version,
// through the in-process IPAM as through delegation.
func TestAddOlderVersions(t *testing.T) {
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.1.0"} {
		r := newRig(t, 2, 2)
		conf := strings.Replace(testConf, `"1.0.0"`, `"`+v+`"`, 1)
		if err := r.cmd(r.plugin.Add, conf, "c1", ""); err != nil {
			t.Fatalf("%s ADD: %v", v, err)
		}
		var got struct {
			CNIVersion string `json:"cniVersion"`
			IPs        []any  `json:"ips"`
		}
		if err := json.Unmarshal(r.out.Bytes(), &got); err != nil || got.CNIVersion != v || len(got.IPs) != 2 {
			t.Errorf("%s result: %+v (%v)\n%s", v, got, err, r.out.String())
		}
	}
}

// TestRepeatedAdd: a second ADD of the same attachment keeps its
// addresses and leaves one endpoint and one interface.
func TestRepeatedAdd(t *testing.T) {
	r := newRig(t, 4, 4)
	var first string
	for i := range 2 {
		if err := r.cmd(r.plugin.Add, testConf, "c1", ""); err != nil {
			t.Fatalf("ADD %d: %v", i+1, err)
		}
		weps := r.endpoints(t)
		if len(weps) != 1 || len(r.dp.links) != 1 || r.ipam.held() != 2 {
			t.Fatalf("after ADD %d: %d endpoints, links %v, %d addresses held", i+1, len(weps), r.dp.links, r.ipam.held())
		}
		if i == 0 {
			first = fmt.Sprint(weps[0].Spec.IPNetworks)
		} else if got := fmt.Sprint(weps[0].Spec.IPNetworks); got != first {
			t.Errorf("addresses changed from %s to %s", first, got)
		}
	}
}
