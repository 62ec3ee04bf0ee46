// Package cni_test runs the built serval and serval-ipam plugins the way
// container runtimes do, through libcni, against a real etcd (embedded)
// and the real kernel, in network namespaces the tests create: one that
// plays the host (with a dummy default route, never the machine's own
// namespace) and one per workload. It needs root; without it every test
// skips.
package cni_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/roottest"
)

// Set up once by TestMain when running as root.
var (
	binDir   string // the built plugins (and host-local when installed)
	toolDir  string // cnitool
	etcdURL  string // the embedded etcd, in the test's own namespace
	ds       datastore.Interface
	ipamc    ipam.Interface
	setupErr error
)

// The pools every test allocates from. "tiny" has 4 addresses and is used
// only when asked for by name (Manual), for the exhaustion test.
const (
	poolV4   = "10.77.0.0/16"
	poolV6   = "fd00:77::/112"
	tinyPool = "10.78.0.0/30"
	nodeName = "svt-host1"
)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // every test that needs root fails, saying so
		}
		tmp, err := os.MkdirTemp("", "svt-cni-")
		if err != nil {
			setupErr = err
			return m.Run()
		}
		defer os.RemoveAll(tmp)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		srv, err := setup(ctx, tmp)
		if srv != nil {
			defer srv.Close()
		}
		if err != nil {
			setupErr = err
		}
		return m.Run()
	}()
	os.Exit(code)
}

func setup(ctx context.Context, tmp string) (*embedetcd.Server, error) {
	binDir = filepath.Join(tmp, "bin")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(gobin, "build", "-o", binDir+"/", "github.com/servalnet/serval/cmd/serval", "github.com/servalnet/serval/cmd/serval-ipam")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building the plugins: %w", err)
	}
	// cnitool, the CNI project's own command-line runtime, from the CNI
	// module this repository already depends on (Debian does not ship
	// it): TestCnitool drives the plugins through it as a new user would.
	toolDir = filepath.Join(tmp, "tools")
	tool := exec.Command(gobin, "build", "-o", toolDir+"/", "github.com/containernetworking/cni/cnitool")
	tool.Stderr = os.Stderr
	if err := tool.Run(); err != nil {
		return nil, fmt.Errorf("building cnitool: %w", err)
	}
	// host-local from Debian's containernetworking-plugins, to show that the
	// serval plugin works with another IPAM plugin.
	if b, err := os.ReadFile("/usr/lib/cni/host-local"); err == nil {
		_ = os.WriteFile(filepath.Join(binDir, "host-local"), b, 0o755)
	}
	if b, err := os.ReadFile("/usr/lib/cni/bridge"); err == nil {
		_ = os.WriteFile(filepath.Join(binDir, "bridge"), b, 0o755)
	}
	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: filepath.Join(tmp, "etcd"),
		ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	etcdURL = srv.ClientURL()
	e, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{etcdURL}})
	if err != nil {
		return srv, err
	}
	ds = e
	ipamc = ipam.New(ds, ipam.Config{})
	manual := api.AssignmentMode("Manual")
	for _, p := range []*api.IPPool{
		{ObjectMeta: api.ObjectMeta{Name: "pool-v4"}, Spec: api.IPPoolSpec{CIDR: poolV4}},
		{ObjectMeta: api.ObjectMeta{Name: "pool-v6"}, Spec: api.IPPoolSpec{CIDR: poolV6}},
		{ObjectMeta: api.ObjectMeta{Name: "tiny"}, Spec: api.IPPoolSpec{CIDR: tinyPool, BlockSize: 30, AssignmentMode: &manual}},
	} {
		p.TypeMeta = api.TypeMeta{Kind: "IPPool", APIVersion: api.APIVersion}
		if _, err := ds.Create(ctx, p); err != nil {
			return srv, fmt.Errorf("creating pool %s: %w", p.Name, err)
		}
	}
	node := &api.Node{TypeMeta: api.TypeMeta{Kind: "Node", APIVersion: api.APIVersion}, ObjectMeta: api.ObjectMeta{Name: nodeName}}
	if _, err := ds.Create(ctx, node); err != nil {
		return srv, fmt.Errorf("creating node: %w", err)
	}
	return srv, nil
}

func requireRoot(t testing.TB) {
	t.Helper()
	roottest.NeedRoot(t, "network namespaces, veths, routes")
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNS creates a named network namespace (svt-cni-<role>-<random>) and
// deletes it when the test ends.
func newNS(t testing.TB, role string) (name string, handle ns.NetNS) {
	t.Helper()
	name = "svt-cni-" + role + "-" + randHex(3)
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := ns.GetNS("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name, h
}

// host is a namespace that plays the host: an uplink with the default
// route (proxy ARP answers only for destinations it has a route to, and
// the plugin takes the MTU from it), IPv6 forwarding on, and a relay on
// its loopback to the test's etcd.
type host struct {
	name     string
	ns       ns.NetNS
	etcd     string // the relay's URL, as the plugins in this host see it
	cni      *libcni.CNIConfig
	cacheDir string
}

func newHost(t testing.TB) *host {
	t.Helper()
	name, h := newNS(t, "host")
	// A veth pair with both ends in the host namespace stands in for the
	// uplink (this kernel may have no dummy driver).
	ipCmd(t, "-n", name, "link", "add", "uplink0", "mtu", "1460", "type", "veth", "peer", "name", "uplink1", "mtu", "1460")
	ipCmd(t, "-n", name, "link", "set", "uplink1", "up")
	ipCmd(t, "-n", name, "link", "set", "uplink0", "up")
	ipCmd(t, "-n", name, "route", "add", "default", "dev", "uplink0")
	ipCmd(t, "-n", name, "-6", "route", "add", "default", "dev", "uplink0")
	ipCmd(t, "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
	hst := &host{name: name, ns: h, cacheDir: t.TempDir()}
	hst.etcd = relay(t, h, strings.TrimPrefix(etcdURL, "http://"))
	hst.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir}, hst.cacheDir, nil)
	return hst
}

// relay listens on 127.0.0.1 inside netns and forwards connections to addr
// on the test's own loopback, so that plugins running in the host
// namespace reach the test's etcd without any interface joining the two.
func relay(t testing.TB, netns ns.NetNS, addr string) string {
	t.Helper()
	var l net.Listener
	err := netns.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatalf("relay listener: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// netConf is a serval network configuration for this host, as a conflist.
// extra is merged into the plugin's object, ipamExtra into "ipam".
func (h *host) netConf(t testing.TB, version, name string, extra, ipamExtra string) *libcni.NetworkConfigList {
	t.Helper()
	plugin := fmt.Sprintf(`{"type":"serval","mtu_file":"/dev/null/serval-mtu","etcd_endpoints":%q,"nodename":%q,"log_level":"debug","log_file_path":%q,
		"ipam_lock_file":%q,"datastore_timeout":3%s,"ipam":{"type":"serval-ipam"%s}}`,
		h.etcd, nodeName, filepath.Join(h.cacheDir, "cni.log"), h.ipamLock(), extra, ipamExtra)
	list := fmt.Sprintf(`{"cniVersion":%q,"name":%q,"plugins":[%s]}`, version, name, plugin)
	l, err := libcni.NetworkConfFromBytes([]byte(list))
	if err != nil {
		t.Fatalf("conflist: %v\n%s", err, list)
	}
	return l
}

// ipamLock is this host's IPAM lock file (each simulated host has its own,
// as real hosts do).
func (h *host) ipamLock() string { return filepath.Join(h.cacheDir, "ipam.lock") }

func (h *host) do(t testing.TB, f func() error) error {
	t.Helper()
	return h.ns.Do(func(ns.NetNS) error { return f() })
}

func (h *host) add(t testing.TB, l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	var res types.Result
	err := h.do(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var err error
		res, err = h.cni.AddNetworkList(ctx, l, rt)
		return err
	})
	return res, err
}

func (h *host) del(t testing.TB, l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return h.do(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return h.cni.DelNetworkList(ctx, l, rt)
	})
}

func (h *host) check(t testing.TB, l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return h.do(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return h.cni.CheckNetworkList(ctx, l, rt)
	})
}

func (h *host) status(t testing.TB, l *libcni.NetworkConfigList) error {
	return h.do(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return h.cni.GetStatusNetworkList(ctx, l)
	})
}

// workload creates a namespace for a workload and its runtime parameters.
func workload(t testing.TB, args ...[2]string) (*libcni.RuntimeConf, ns.NetNS) {
	t.Helper()
	name, h := newNS(t, "w")
	return &libcni.RuntimeConf{ContainerID: "c" + randHex(8), NetNS: "/run/netns/" + name, IfName: "eth0", Args: args}, h
}

var quietLog = slog.New(slog.DiscardHandler)
