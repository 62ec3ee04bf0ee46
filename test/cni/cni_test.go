package cni_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/cni"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/roottest"
)

// ipOut runs ip and returns its output with each line trimmed.
func ipOut(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func readSysctl(t testing.TB, h *host, path string) string {
	var v []byte
	err := h.do(t, func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/" + path)
		return err
	})
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimSpace(string(v))
}

// dump is the readable state of one attachment, in the workload's
// namespace and on the host, with the allocated addresses and the veth
// name replaced by placeholders so that it can be compared with golden
// text.
func dump(t testing.TB, h *host, wl string, veth string, addrs []netip.Addr) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "workload link: %s\n", linkLine(ipOut(t, "-n", wl, "-o", "link", "show", "dev", "eth0")))
	fmt.Fprintf(&b, "workload addrs:\n%s\n", ipOut(t, "-n", wl, "-o", "addr", "show", "dev", "eth0", "scope", "global"))
	fmt.Fprintf(&b, "workload routes v4:\n%s\n", ipOut(t, "-n", wl, "-4", "route", "show"))
	fmt.Fprintf(&b, "workload routes v6:\n%s\n", ipOut(t, "-n", wl, "-6", "route", "show", "default"))
	fmt.Fprintf(&b, "host link: %s\n", linkLine(ipOut(t, "-n", h.name, "-o", "link", "show", "dev", veth)))
	for _, s := range []string{"ipv4/conf/%s/proxy_arp", "ipv4/neigh/%s/proxy_delay", "ipv4/conf/%s/forwarding", "ipv6/conf/%s/forwarding", "ipv6/conf/%s/accept_ra"} {
		p := fmt.Sprintf("net/"+s, veth)
		fmt.Fprintf(&b, "host %s = %s\n", fmt.Sprintf(s, "VETH"), readSysctl(t, h, p))
	}
	fmt.Fprintf(&b, "host routes dev VETH:\n%s\n%s", ipOut(t, "-n", h.name, "-4", "route", "show", "dev", veth),
		ipOut(t, "-n", h.name, "-6", "route", "show", "dev", veth))
	out := b.String()
	for _, a := range addrs {
		ph := "IP4"
		if a.Is6() {
			ph = "IP6"
		}
		out = strings.ReplaceAll(out, a.String(), ph)
	}
	return strings.ReplaceAll(out, veth, "VETH")
}

// linkLine keeps the parts of `ip -o link` that matter: name, state flags,
// MTU and MAC (the workload's MAC is random, so only the host's is kept).
func linkLine(s string) string {
	f := strings.Fields(s)
	var out []string
	for i := 0; i < len(f); i++ {
		switch {
		case i == 1:
			name, _, _ := strings.Cut(f[i], "@")
			out = append(out, name)
		case strings.HasPrefix(f[i], "<"):
			out = append(out, f[i])
		case f[i] == "mtu" && i+1 < len(f):
			out = append(out, "mtu "+f[i+1])
		case f[i] == "link/ether" && i+1 < len(f) && f[i+1] == "ee:ee:ee:ee:ee:ee":
			out = append(out, "ether "+f[i+1])
		}
	}
	return strings.Join(out, " ")
}

func resultAddrs(t testing.TB, r types.Result) []netip.Addr {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("converting result: %v", err)
	}
	var out []netip.Addr
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		out = append(out, a.Unmap())
	}
	return out
}

func getWEP(t testing.TB, namespace, name string) (*api.WorkloadEndpoint, error) {
	t.Helper()
	r, err := ds.Get(context.Background(), api.Key{Kind: "WorkloadEndpoint", Namespace: namespace, Name: name})
	if err != nil {
		return nil, err
	}
	return r.(*api.WorkloadEndpoint), nil
}

func linkExists(t testing.TB, h *host, name string) bool {
	t.Helper()
	return exec.Command("ip", "-n", h.name, "link", "show", "dev", name).Run() == nil
}

// assertGone checks that an attachment left nothing: no veth, no route of
// ours, no endpoint, no address held by its handle.
func assertGone(t testing.TB, h *host, netName string, rt *libcni.RuntimeConf) {
	t.Helper()
	veth := cni.VethName("cali", rt.ContainerID)
	if linkExists(t, h, veth) {
		t.Errorf("host veth %s is still there", veth)
	}
	if r := ipOut(t, "-n", h.name, "route", "show", "proto", "80") + ipOut(t, "-n", h.name, "-6", "route", "show", "proto", "80"); r != "" {
		t.Errorf("routes of ours left on the host:\n%s", r)
	}
	if _, err := getWEP(t, "default", api.WorkloadEndpointName(nodeName, "cni", rt.ContainerID, rt.IfName)); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("endpoint still there (err %v)", err)
	}
	if ips, err := ipamc.IPsByHandle(context.Background(), netName+"."+rt.ContainerID); err != nil || len(ips) != 0 {
		t.Errorf("handle %s.%s still holds %v (err %v)", netName, rt.ContainerID, ips, err)
	}
}

const goldenDual = `workload link: eth0 <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1460
workload addrs:
2: eth0 inet IP4/32 scope global eth0\ valid_lft forever preferred_lft forever
2: eth0 inet6 IP6/128 scope global nodad \ valid_lft forever preferred_lft forever
workload routes v4:
default via 169.254.1.1 dev eth0
169.254.1.1 dev eth0 scope link
workload routes v6:
default via fe80::ecee:eeff:feee:eeee dev eth0 metric 1024 pref medium
host link: VETH <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1460 ether ee:ee:ee:ee:ee:ee
host ipv4/conf/VETH/proxy_arp = 1
host ipv4/neigh/VETH/proxy_delay = 0
host ipv4/conf/VETH/forwarding = 1
host ipv6/conf/VETH/forwarding = 1
host ipv6/conf/VETH/accept_ra = 0
host routes dev VETH:
IP4 proto 80 scope link
IP6 proto 80 metric 1024 pref medium
fe80::/64 proto kernel metric 256 pref medium`

// TestSpecVersions runs ADD, CHECK, STATUS and DEL through libcni for
// every spec version, dual stack, and compares what the kernel was told
// with golden text.
func TestSpecVersions(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			netName := "net-" + strings.ReplaceAll(v, ".", "")
			l := h.netConf(t, v, netName, "", `,"assign_ipv6":"true"`)
			rt, _ := workload(t)
			res, err := h.add(t, l, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if res.Version() != v {
				t.Errorf("result version %s, want %s", res.Version(), v)
			}
			addrs := resultAddrs(t, res)
			if len(addrs) != 2 || !addrs[0].Is4() || !addrs[1].Is6() ||
				!netip.MustParsePrefix(poolV4).Contains(addrs[0]) || !netip.MustParsePrefix(poolV6).Contains(addrs[1]) {
				t.Fatalf("addresses %v, want one from %s and one from %s", addrs, poolV4, poolV6)
			}
			veth := cni.VethName("cali", rt.ContainerID)
			wl := strings.TrimPrefix(rt.NetNS, "/run/netns/")
			if got := dump(t, h, wl, veth, addrs); got != goldenDual {
				t.Errorf("after ADD:\n%s\n\nwant:\n%s", got, goldenDual)
			}
			held, err := ipamc.IPsByHandle(context.Background(), netName+"."+rt.ContainerID)
			if err != nil || fmt.Sprint(held) != fmt.Sprint(addrs) {
				t.Errorf("handle holds %v (err %v), want %v", held, err, addrs)
			}
			w, err := getWEP(t, "default", api.WorkloadEndpointName(nodeName, "cni", rt.ContainerID, "eth0"))
			if err != nil {
				t.Fatalf("endpoint: %v", err)
			}
			if w.Spec.InterfaceName != veth || w.Spec.Node != nodeName || w.Spec.Orchestrator != "cni" ||
				fmt.Sprint(w.Spec.IPNetworks) != fmt.Sprintf("[%s/32 %s/128]", addrs[0], addrs[1]) || w.Spec.MAC == "" {
				t.Errorf("endpoint spec %+v", w.Spec)
			}
			// The endpoint is written while the veth is configured, with
			// the MAC chosen when it was created: it must be the one the
			// workload's interface has.
			if mac := linkMAC(t, wl, "eth0"); w.Spec.MAC != mac {
				t.Errorf("endpoint MAC %s, the workload's eth0 has %s", w.Spec.MAC, mac)
			}

			checkErr := h.check(t, l, rt)
			if v < "0.4.0" {
				if !errors.Is(checkErr, libcni.ErrorCheckNotSupp) {
					t.Errorf("CHECK with %s = %v, want not supported", v, checkErr)
				}
			} else if checkErr != nil {
				t.Errorf("CHECK: %v", checkErr)
			}
			if v == "1.1.0" {
				if err := h.status(t, l); err != nil {
					t.Errorf("STATUS: %v", err)
				}
			}
			if err := h.del(t, l, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			assertGone(t, h, netName, rt)
		})
	}
}

// TestCheckFindsDamage breaks an attachment behind the plugin's back and
// expects CHECK to say what is wrong.
func TestCheckFindsDamage(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.0.0", "net-chk", "", "")
	tests := []struct {
		name   string
		damage func(t *testing.T, wl, veth string, addr netip.Addr)
		want   string
	}{
		{"default route gone", func(t *testing.T, wl, _ string, _ netip.Addr) {
			ipCmd(t, "-n", wl, "route", "del", "default")
		}, "no route default via 169.254.1.1"},
		{"address gone", func(t *testing.T, wl, _ string, a netip.Addr) {
			ipCmd(t, "-n", wl, "addr", "del", a.String()+"/32", "dev", "eth0")
		}, "does not have address"},
		{"host route gone", func(t *testing.T, _, veth string, a netip.Addr) {
			ipCmd(t, "-n", h.name, "route", "del", a.String()+"/32", "dev", veth)
		}, "no host route"},
		{"proxy arp off", func(t *testing.T, _, veth string, _ netip.Addr) {
			ipCmd(t, "netns", "exec", h.name, "sysctl", "-q", "-w", "net.ipv4.conf."+veth+".proxy_arp=0")
		}, "proxy_arp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, _ := workload(t)
			res, err := h.add(t, l, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { _ = h.del(t, l, rt) })
			if err := h.check(t, l, rt); err != nil {
				t.Fatalf("CHECK before damage: %v", err)
			}
			tt.damage(t, strings.TrimPrefix(rt.NetNS, "/run/netns/"), cni.VethName("cali", rt.ContainerID), resultAddrs(t, res)[0])
			err = h.check(t, l, rt)
			var te *types.Error
			if !errors.As(err, &te) || te.Code != cni.ErrCheckFailed || !strings.Contains(te.Msg, tt.want) {
				t.Errorf("CHECK = %v, want code %d mentioning %q", err, cni.ErrCheckFailed, tt.want)
			}
		})
	}
}

// TestDelIdempotent: ADD twice, DEL twice, DEL after the namespace is
// gone, DEL of something never added.
func TestDelIdempotent(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.0.0", "net-del", "", "")

	rt, _ := workload(t)
	res1, err := h.add(t, l, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	// A retried ADD replaces the veth and keeps the address.
	res2, err := h.add(t, l, rt)
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	if a1, a2 := resultAddrs(t, res1), resultAddrs(t, res2); fmt.Sprint(a1) != fmt.Sprint(a2) {
		t.Errorf("second ADD gave %v, first %v", a2, a1)
	}
	if err := h.check(t, l, rt); err != nil {
		t.Errorf("CHECK after the second ADD: %v", err)
	}
	for i := range 2 {
		if err := h.del(t, l, rt); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	assertGone(t, h, "net-del", rt)

	rt2, _ := workload(t)
	if _, err := h.add(t, l, rt2); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	ipCmd(t, "netns", "del", strings.TrimPrefix(rt2.NetNS, "/run/netns/"))
	if err := h.del(t, l, rt2); err != nil {
		t.Fatalf("DEL after the namespace is gone: %v", err)
	}
	assertGone(t, h, "net-del", rt2)
	rt2.NetNS = ""
	if err := h.del(t, l, rt2); err != nil {
		t.Fatalf("DEL without a namespace: %v", err)
	}

	never := &libcni.RuntimeConf{ContainerID: "never-added", NetNS: "/run/netns/svt-cni-missing", IfName: "eth0"}
	if err := h.del(t, l, never); err != nil {
		t.Fatalf("DEL of an attachment never added: %v", err)
	}
}

// TestLabelsAndProfiles: the endpoint carries labels and profiles from the
// network configuration, runtimeConfig and CNI_ARGS, and the Kubernetes
// identity when CNI_ARGS name a pod.
func TestLabelsAndProfiles(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.1.0", "net-lbl",
		`,"labels":{"env":"prod","tier":"conf"},"profiles":["base"],"capabilities":{"labels":true,"profiles":true}`, "")
	rt, _ := workload(t, [2]string{"K8S_POD_NAMESPACE", "shop"}, [2]string{"K8S_POD_NAME", "web-0"},
		[2]string{"label.app", "web"}, [2]string{"IgnoreUnknown", "1"})
	rt.CapabilityArgs = map[string]any{"labels": map[string]string{"tier": "runtime", "team": "a"}, "profiles": []string{"from-runtime"}}
	if _, err := h.add(t, l, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	w, err := getWEP(t, "shop", api.WorkloadEndpointName(nodeName, "k8s", "web-0", "eth0"))
	if err != nil {
		t.Fatalf("endpoint: %v", err)
	}
	var labels []string
	for k, v := range w.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	wantLabels := "[app=web env=prod projectcalico.org/namespace=shop projectcalico.org/orchestrator=k8s team=a tier=runtime]"
	if fmt.Sprint(labels) != wantLabels {
		t.Errorf("labels %v, want %s", labels, wantLabels)
	}
	if fmt.Sprint(w.Spec.Profiles) != "[kns.shop base from-runtime]" {
		t.Errorf("profiles %v", w.Spec.Profiles)
	}
	if w.Spec.Pod != "web-0" || w.Spec.Orchestrator != "k8s" || w.Spec.ContainerID != rt.ContainerID ||
		w.Spec.InterfaceName != cni.VethName("cali", "shop.web-0") {
		t.Errorf("spec %+v", w.Spec)
	}
	if err := h.del(t, l, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if _, err := getWEP(t, "shop", w.Name); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("endpoint after DEL: %v", err)
	}
}

// TestFailures: every broken configuration and every failure part-way is
// a CNI error with the right code and a message naming what failed, and
// leaves nothing behind.
func TestFailures(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	deadEndpoint := relayToNowhere(t, h)
	tests := []struct {
		name      string
		extra     string
		ipamExtra string
		wantCode  uint
		wantMsg   []string
	}{
		{"mtu not a number", `,"mtu":"big"`, "", types.ErrInvalidNetworkConfig, []string{"mtu", "is not a number"}},
		{"bad pool list", "", `,"ipv4_pools":"pool-v4"`, types.ErrInvalidNetworkConfig, []string{"ipam.ipv4_pools", "is not a list"}},
		{"bad assign_ipv6", "", `,"assign_ipv6":"maybe"`, types.ErrInvalidNetworkConfig, []string{"assign_ipv6", "not a boolean"}},
		{"bad label in config", `,"labels":{"a b":"c"}`, "", types.ErrInvalidNetworkConfig, []string{`labels["a b"]`}},
		{"unknown pool", "", `,"ipv4_pools":["no-such-pool"]`, cni.ErrIPAM, []string{"no-such-pool"}},
		{"datastore down", `,"etcd_endpoints":"` + deadEndpoint + `","datastore_timeout":1`, "", types.ErrTryAgainLater,
			[]string{"allocating addresses with IPAM plugin serval-ipam", "did not answer"}},
		{"unknown IPAM plugin", "", `,"type":"no-such-ipam"`, cni.ErrIPAM, []string{"no-such-ipam"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := h.netConf(t, "1.0.0", "net-fail", tt.extra, tt.ipamExtra)
			rt, _ := workload(t)
			_, err := h.add(t, l, rt)
			var te *types.Error
			if !errors.As(err, &te) {
				t.Fatalf("ADD = %v (%T), want a CNI error", err, err)
			}
			if te.Code != tt.wantCode {
				t.Errorf("code %d (%s), want %d", te.Code, te.Msg, tt.wantCode)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(te.Msg, m) {
					t.Errorf("message %q does not mention %q", te.Msg, m)
				}
			}
			assertGone(t, h, "net-fail", rt)
		})
	}
}

// relayToNowhere is an etcd endpoint in the host namespace where nothing
// listens: the datastore is down.
func relayToNowhere(t testing.TB, h *host) string {
	t.Helper()
	// A port that was free a moment ago on the host namespace's loopback.
	var port int
	_ = h.do(t, func() error {
		l, err := listenLoopback()
		if err != nil {
			return err
		}
		port = int(l.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port())
		return l.Close()
	})
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// TestIPAMExhaustion fills the 4-address pool "tiny" and expects the fifth
// ADD to fail with a clear error and no interface left.
func TestIPAMExhaustion(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.0.0", "net-tiny", "", `,"ipv4_pools":["tiny"]`)
	var added []*libcni.RuntimeConf
	t.Cleanup(func() {
		for _, rt := range added {
			_ = h.del(t, l, rt)
		}
	})
	for i := range 4 {
		rt, _ := workload(t)
		if _, err := h.add(t, l, rt); err != nil {
			t.Fatalf("ADD %d of 4: %v", i+1, err)
		}
		added = append(added, rt)
	}
	rt, _ := workload(t)
	_, err := h.add(t, l, rt)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != cni.ErrIPAM || !strings.Contains(te.Msg, "tiny") || !strings.Contains(te.Msg, "exhausted") {
		t.Fatalf("fifth ADD = %v, want code %d naming pool tiny as exhausted", err, cni.ErrIPAM)
	}
	if linkExists(t, h, cni.VethName("cali", rt.ContainerID)) {
		t.Errorf("veth left behind by the failed ADD")
	}
	if _, err := getWEP(t, "default", api.WorkloadEndpointName(nodeName, "cni", rt.ContainerID, "eth0")); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("endpoint left behind: %v", err)
	}
	// Releasing one makes room again.
	if err := h.del(t, l, added[0]); err != nil {
		t.Fatal(err)
	}
	added = added[1:]
	if _, err := h.add(t, l, rt); err != nil {
		t.Fatalf("ADD after a DEL freed an address: %v", err)
	}
	added = append(added, rt)
}

// TestStatusDatastoreDown: STATUS answers 50 when the datastore does not.
func TestStatusDatastoreDown(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.1.0", "net-status", `,"etcd_endpoints":"`+relayToNowhere(t, h)+`","datastore_timeout":1`, "")
	err := h.status(t, l)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS = %v, want code 50", err)
	}
}

// TestOtherIPAM: the serval plugin with host-local, and serval-ipam under
// another plugin (bridge), both from Debian's containernetworking-plugins.
func TestOtherIPAM(t *testing.T) {
	requireRoot(t)
	for _, p := range []string{"host-local", "bridge"} {
		roottest.NeedFile(t, binDir+"/"+p, "the CNI reference plugin "+p, "containernetworking-plugins")
	}
	h := newHost(t)
	t.Run("serval with host-local", func(t *testing.T) {
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net-hl","plugins":[{"type":"serval","mtu_file":"/dev/null/serval-mtu","etcd_endpoints":%q,"nodename":%q,
			"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.79.0.0/24"}]]}}]}`, h.etcd, nodeName, t.TempDir())
		l, err := libcni.NetworkConfFromBytes([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		rt, _ := workload(t)
		res, err := h.add(t, l, rt)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if a := resultAddrs(t, res); len(a) != 1 || !netip.MustParsePrefix("10.79.0.0/24").Contains(a[0]) {
			t.Errorf("addresses %v", a)
		}
		if err := h.check(t, l, rt); err != nil {
			t.Errorf("CHECK: %v", err)
		}
		if err := h.del(t, l, rt); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if linkExists(t, h, cni.VethName("cali", rt.ContainerID)) {
			t.Errorf("veth left after DEL")
		}
	})
	t.Run("datastore down after host-local allocated", func(t *testing.T) {
		// The endpoint write is what fails: the veth made and the address
		// host-local allocated must both be undone.
		dataDir := t.TempDir()
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net-hl2","plugins":[{"type":"serval","mtu_file":"/dev/null/serval-mtu","etcd_endpoints":%q,"nodename":%q,
			"datastore_timeout":1,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.79.1.0/24"}]]}}]}`,
			relayToNowhere(t, h), nodeName, dataDir)
		l, err := libcni.NetworkConfFromBytes([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		rt, _ := workload(t)
		_, err = h.add(t, l, rt)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "writing WorkloadEndpoint") {
			t.Fatalf("ADD = %v, want code 11 naming the endpoint write", err)
		}
		if linkExists(t, h, cni.VethName("cali", rt.ContainerID)) {
			t.Errorf("veth left behind")
		}
		entries, _ := os.ReadDir(filepath.Join(dataDir, "net-hl2"))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "10.79.1.") {
				t.Errorf("host-local still holds %s", e.Name())
			}
		}
	})
	t.Run("bridge with serval-ipam", func(t *testing.T) {
		// serval-ipam reads etcd_endpoints and nodename at the top level,
		// as Calico's IPAM plugin does; bridge passes its whole
		// configuration on.
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net-br","plugins":[{"type":"bridge","bridge":"svtbr0",
			"etcd_endpoints":%q,"nodename":%q,"ipam_lock_file":%q,"ipam":{"type":"serval-ipam"}}]}`, h.etcd, nodeName, h.ipamLock())
		l, err := libcni.NetworkConfFromBytes([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		rt, _ := workload(t)
		res, err := h.add(t, l, rt)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		a := resultAddrs(t, res)
		if len(a) != 1 || !netip.MustParsePrefix(poolV4).Contains(a[0]) {
			t.Errorf("addresses %v", a)
		}
		if held, _ := ipamc.IPsByHandle(context.Background(), "net-br."+rt.ContainerID); fmt.Sprint(held) != fmt.Sprint(a) {
			t.Errorf("handle holds %v, want %v", held, a)
		}
		if err := h.del(t, l, rt); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if held, _ := ipamc.IPsByHandle(context.Background(), "net-br."+rt.ContainerID); len(held) != 0 {
			t.Errorf("handle still holds %v", held)
		}
	})
}

// TestExecIPAM: with exec_ipam the serval plugin runs bin/serval-ipam
// through CNI delegation instead of in its own process; the result is the
// same.
func TestExecIPAM(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	l := h.netConf(t, "1.1.0", "net-exec", `,"exec_ipam":true`, `,"assign_ipv6":"true"`)
	rt, _ := workload(t)
	res, err := h.add(t, l, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	addrs := resultAddrs(t, res)
	if held, _ := ipamc.IPsByHandle(context.Background(), "net-exec."+rt.ContainerID); len(addrs) != 2 || fmt.Sprint(held) != fmt.Sprint(addrs) {
		t.Errorf("result %v, handle holds %v", addrs, held)
	}
	if err := h.check(t, l, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := h.del(t, l, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertGone(t, h, "net-exec", rt)
}

// linkMAC is the MAC address of dev in the named network namespace.
func linkMAC(t *testing.T, netns, dev string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", netns, "-o", "link", "show", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s link show %s: %v: %s", netns, dev, err, out)
	}
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC address in: %s", out)
	return ""
}
