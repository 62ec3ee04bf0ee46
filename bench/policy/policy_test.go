package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/roottest"
)

// topo is a host namespace programmed by the dataplane, with workloads w1
// (10.65.0.1) and w2 (10.65.0.2, serving on :8080) on veths cali1, cali2.
type topo struct {
	dp       *dataplane.Dataplane
	w1, w2   netns.NsHandle
	hostName string
}

func needRoot(t testing.TB) {
	t.Helper()
	roottest.NeedRoot(t, "network namespaces and nftables")
}

func sh(t testing.TB, ns, cmd string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s in %s: %v: %s", cmd, ns, err, out)
	}
}

func newNS(t testing.TB, name string) netns.NsHandle {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); _ = exec.Command("ip", "netns", "del", name).Run() })
	return h
}

// inNS runs f on a thread locked into ns; the thread is discarded after.
func inNS[T any](ns netns.NsHandle, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			var zero T
			c <- res{zero, err}
			return
		}
		v, err := f()
		c <- res{v, err}
	}()
	r := <-c
	return r.v, r.err
}

// namespaces builds the host and workload namespaces, the veths between
// them, the workloads' addresses and routes, and w2's server on :8080; the
// host's own routing and firewall are the caller's.
func namespaces(t testing.TB) (pre string, host, w1, w2 netns.NsHandle) {
	needRoot(t)
	pre = fmt.Sprintf("benchpol%d", rand.IntN(1_000_000))
	host = newNS(t, pre+"-host")
	w1 = newNS(t, pre+"-w1")
	w2 = newNS(t, pre+"-w2")
	// Proxy ARP answers for 169.254.1.1 only if the host routes it out of
	// another interface: a default route into an unused veth provides one.
	sh(t, pre+"-host", "ip link set lo up && ip link add up0 type veth peer name up0p && ip link set up0p up && ip link set up0 up && ip route add default dev up0 && "+
		"ip link add cali1 type veth peer name eth0 netns "+pre+"-w1 && "+
		"ip link add cali2 type veth peer name eth0 netns "+pre+"-w2 && ip link set cali1 up && ip link set cali2 up")
	for _, w := range []struct{ ns, ip string }{{pre + "-w1", "10.65.0.1"}, {pre + "-w2", "10.65.0.2"}} {
		sh(t, w.ns, "ip link set lo up && ip link set eth0 up && ip addr add "+w.ip+"/32 dev eth0 && "+
			"ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0 && "+
			"sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range='1024 65535'")
	}
	l, err := inNS(w2, func() (net.Listener, error) { return net.Listen("tcp", "10.65.0.2:8080") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go Serve(l)
	return pre, host, w1, w2
}

func newTopo(t testing.TB) *topo {
	pre, host, w1, w2 := namespaces(t)
	nlh, err := netlink.NewHandleAt(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nlh.Close)
	nft := dataplane.NewKernelNFT(func() (dataplane.Conn, error) { return dataplane.NewConn(nftables.WithNetNSFd(int(host))) }).InNetNS(int(host))
	dp, err := dataplane.New(dataplane.Options{NFT: nft, Routes: nlh, Sysctl: dataplane.NetnsSysctl{NS: host}})
	if err != nil {
		t.Fatal(err)
	}
	return &topo{dp: dp, w1: w1, w2: w2, hostName: pre + "-host"}
}

func single(a string) hoststate.IPSetMember {
	return hoststate.IPSetMember{Prefix: netip.PrefixFrom(netip.MustParseAddr(a), 32)}
}

// program installs n policies on w2's ingress, none matching w1's traffic
// but the last (allow tcp from w1 to 8080); with n == 0, w2 has no policy
// and its profile allows. Policies draw their sources from 50 IP sets of
// 20 addresses each, and their ports from 1000 up.
//
// With uncompiled, every rule also carries "notNets 192.0.2.0/24" (a
// documentation net, which changes nothing for w1's traffic) so that no
// policy compiles into a run: each is a jump, one more rule per policy
// for the first packet, as in a linear-chain firewall.
func (tp *topo) program(t testing.TB, n int, uncompiled bool) time.Duration {
	d := tp.dp
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}})
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	for s := 0; s < 50; s++ {
		set := hoststate.IPSet{ID: fmt.Sprintf("sel-%d", s), Type: hoststate.IPSetNets}
		for m := 0; m < 20; m++ {
			set.Members = append(set.Members, single(fmt.Sprintf("10.70.%d.%d", s, m)))
		}
		d.OnIPSetUpdate(set)
	}
	d.OnIPSetUpdate(hoststate.IPSet{ID: "w1", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{single("10.65.0.1")}})
	tcp := uint8(6)
	var ids []hoststate.PolicyID
	for p := 0; p < n; p++ {
		id := hoststate.PolicyID{Tier: "default", Kind: "GlobalNetworkPolicy", Name: fmt.Sprintf("p%05d", p)}
		r := hoststate.Rule{Action: hoststate.Allow, Protocol: &tcp, SrcIPSetIDs: []string{fmt.Sprintf("sel-%d", p%50)},
			DstPorts: []hoststate.PortRange{{First: uint16(1000 + p), Last: uint16(1000 + p)}}, ID: "r0"}
		if p == n-1 {
			r.SrcIPSetIDs = []string{"w1"}
			r.DstPorts = []hoststate.PortRange{{First: 8080, Last: 8080}}
		}
		if uncompiled {
			r.NotSrcNets = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		}
		d.OnPolicyUpdate(hoststate.Policy{ID: id, InboundRules: []hoststate.Rule{r}})
		ids = append(ids, id)
	}
	var tiers []hoststate.TierPolicies
	if n > 0 {
		tiers = []hoststate.TierPolicies{{Name: "default", DefaultAction: hoststate.Deny, IngressPolicies: ids}}
	}
	d.OnWorkloadEndpointUpdate(hoststate.WorkloadEndpoint{ID: "ns/w1", InterfaceName: "cali1", IPv4Nets: []netip.Prefix{netip.MustParsePrefix("10.65.0.1/32")}, ProfileIDs: []string{"allow-all"}})
	d.OnWorkloadEndpointUpdate(hoststate.WorkloadEndpoint{ID: "ns/w2", InterfaceName: "cali2", IPv4Nets: []netip.Prefix{netip.MustParsePrefix("10.65.0.2/32")}, Tiers: tiers, ProfileIDs: []string{"allow-all"}})
	d.OnInSync()
	start := time.Now()
	if err := d.Apply(context.Background()); err != nil {
		t.Fatalf("programming %d policies: %v", n, err)
	}
	return time.Since(start)
}

func loadDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SERVAL_BENCH_DURATION")); err == nil {
		return d
	}
	return 5 * time.Second
}

// BenchmarkConnRate reports connections per second and first-packet
// latency from w1 to w2 with 0, 100, 1,000 and 5,000 policies on w2
// ("policies=N", Serval's table); the same policies kept from compiling
// ("uncompiled=N", a jump per policy) at 1,000 and 5,000 for reference;
// and the linear-chain comparison ("iptables=N": no Serval table, N
// non-matching iptables rules ahead of the accept, after the same
// conntrack shortcut; see iptables_test.go) at 0, 100, 1,000 and 5,000.
// SERVAL_BENCH_DURATION sets the load time per case (default 5s).
func BenchmarkConnRate(b *testing.B) {
	type series struct {
		name       string
		n          int
		uncompiled bool
		iptables   bool
	}
	var all []series
	for _, n := range []int{0, 100, 1000, 5000} {
		all = append(all, series{name: fmt.Sprintf("policies=%d", n), n: n})
	}
	for _, n := range []int{1000, 5000} {
		all = append(all, series{name: fmt.Sprintf("uncompiled=%d", n), n: n, uncompiled: true})
	}
	for _, n := range []int{0, 100, 1000, 5000} {
		all = append(all, series{name: fmt.Sprintf("iptables=%d", n), n: n, iptables: true})
	}
	for _, sr := range all {
		n := sr.n
		b.Run(sr.name, func(b *testing.B) {
			var tp *topo
			var took time.Duration
			if sr.iptables {
				tp, took = newIptablesTopo(b, n)
			} else {
				tp = newTopo(b)
				took = tp.program(b, n, sr.uncompiled)
				if os.Getenv("SERVAL_BENCH_NOFW") != "" {
					sh(b, tp.hostName, "nft delete table inet serval")
				}
			}
			var r Result
			for i := 0; i < b.N; i++ {
				var err error
				r, err = Load(context.Background(), Options{Addr: "10.65.0.2:8080", Duration: loadDuration(), Workers: 2,
					Setup: func() error { runtime.LockOSThread(); return netns.Set(tp.w1) }})
				if err != nil {
					b.Fatal(err)
				}
				if r.Conns == 0 {
					b.Fatalf("no connection got through: %v", r)
				}
			}
			b.ReportMetric(r.Rate(), "conns/s")
			b.ReportMetric(float64(r.Percentile(50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(r.Percentile(99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(r.Errors), "errors")
			b.ReportMetric(took.Seconds()*1000, "apply-ms")
			b.Log(strings.TrimSpace(r.String()))
		})
	}
}

// TestPolicyIsEnforced guards the benchmark's premise, for Serval's table
// and for the iptables chain: with 100 policies (rules) installed, w1
// reaches w2:8080 only through the last one, and a port none allows is
// dropped.
func TestPolicyIsEnforced(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T) *topo
	}{
		{"serval", func(t *testing.T) *topo { tp := newTopo(t); tp.program(t, 100, false); return tp }},
		{"iptables", func(t *testing.T) *topo { tp, _ := newIptablesTopo(t, 100); return tp }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp := tt.setup(t)
			l, err := inNS(tp.w2, func() (net.Listener, error) { return net.Listen("tcp", "10.65.0.2:9090") })
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go Serve(l)
			dial := func(addr string) error {
				_, err := inNS(tp.w1, func() (struct{}, error) {
					c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
					if err == nil {
						c.Close()
					}
					return struct{}{}, err
				})
				return err
			}
			if err := dial("10.65.0.2:8080"); err != nil {
				t.Errorf("w1→w2:8080 (allowed by the last policy): %v", err)
			}
			if err := dial("10.65.0.2:9090"); err == nil {
				t.Errorf("w1→w2:9090 got through; no policy allows it")
			}
		})
	}
}
