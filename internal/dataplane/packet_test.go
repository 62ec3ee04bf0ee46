package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/servalnet/serval/internal/hoststate"
)

// inNetns runs f on a thread inside ns. The thread is never handed back to
// the scheduler: the goroutine ends locked, so the thread is discarded.
func inNetns[T any](ns netns.NsHandle, f func() (T, error)) (T, error) {
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

// listen starts a TCP server in ns that accepts and closes connections.
func listen(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	l, err := inNetns(ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dial connects from ns to addr, optionally from a source address the
// namespace does not own (IP_FREEBIND), with a short timeout.
func dial(ns netns.NsHandle, from, addr string) error {
	_, err := inNetns(ns, func() (struct{}, error) {
		d := net.Dialer{Timeout: 400 * time.Millisecond}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
			d.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
				})
				return errors.Join(err, serr)
			}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, c.Close()
	})
	return err
}

var pingID atomic.Int32

// ping sends one ICMP echo request from ns and waits briefly for the reply.
func ping(ns netns.NsHandle, to string) error {
	_, err := inNetns(ns, func() (struct{}, error) {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return struct{}{}, err
		}
		defer c.Close()
		// A fresh ID per ping: conntrack would otherwise see the echo as
		// part of an earlier, established flow and skip policy.
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(pingID.Add(1)), Seq: 1, Data: []byte("serval")}}
		b, _ := msg.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(to)}); err != nil {
			return struct{}{}, err
		}
		_ = c.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return struct{}{}, err
			}
			if m, err := icmp.ParseMessage(1, buf[:n]); err == nil && m.Type == ipv4.ICMPTypeEchoReply {
				return struct{}{}, nil
			}
		}
	})
	return err
}

type topo struct {
	d                *kernelDP
	host, w1, w2     netns.NsHandle
	hostName, w1Name string
}

// newTopo builds a host namespace with two workloads on veths, addressed
// the Calico way: a /32 on the workload, a default route via 169.254.1.1
// that the host answers by proxy ARP, and a /32 route per workload on the
// host (programmed by the dataplane).
func newTopo(t *testing.T) *topo {
	d := newKernelDP(t, "host")
	w1n, w1 := newNetns(t, "w1")
	w2n, w2 := newNetns(t, "w2")
	run := func(ns string, cmds ...string) {
		for _, c := range cmds {
			inNS(t, ns, append([]string{"sh", "-c"}, c)...)
		}
	}
	run(d.ns,
		"ip link set lo up",
		"ip link add eth0 type veth peer name eth0p && ip link set eth0p up && ip link set eth0 up && ip addr add 10.0.0.100/32 dev eth0 && ip route add default dev eth0",
		"ip link add cali1 type veth peer name eth0 netns "+w1n,
		"ip link add cali2 type veth peer name eth0 netns "+w2n,
		"ip link set cali1 up && ip link set cali2 up")
	for _, w := range []struct{ ns, ip string }{{w1n, "10.65.0.1"}, {w2n, "10.65.0.2"}} {
		run(w.ns, "ip link set lo up && ip link set eth0 up",
			"ip addr add "+w.ip+"/32 dev eth0",
			"ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0")
	}
	listen(t, w2, "10.65.0.2:80")
	listen(t, w2, "10.65.0.2:8080")
	listen(t, w2, "10.65.0.2:9090")
	listen(t, d.h, "10.0.0.100:2222")
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}})
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-out", OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	d.OnIPSetUpdate(hoststate.IPSet{ID: "w1", Type: hoststate.IPSetNets, Members: []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.65.0.1/32")}}})
	d.OnIPSetUpdate(hoststate.IPSet{ID: "np-web", Type: hoststate.IPSetNetPorts, Members: []hoststate.IPSetMember{{Prefix: netip.MustParsePrefix("10.65.0.2/32"), Protocol: tcp, Port: 8080}}})
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil, "allow-out"))
	d.OnLocalBlockUpdate(netip.MustParsePrefix("10.65.0.0/26"))
	d.OnInSync()
	return &topo{d: d, host: d.h, w1: w1, w2: w2, hostName: d.ns, w1Name: w1n}
}

func (tp *topo) w2Policy(t *testing.T, tiers []hoststate.TierPolicies, profiles ...string) {
	t.Helper()
	tp.d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali2", pfx("10.65.0.2/32"), tiers, profiles...))
	if err := tp.d.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func TestPackets(t *testing.T) {
	tp := newTopo(t)
	d := tp.d
	pol := func(tier, name string, rules ...hoststate.Rule) hoststate.PolicyID {
		d.OnPolicyUpdate(inPolicy(tier, name, rules...))
		return pid(tier, name)
	}
	allow := pol("t1", "allow-80", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), DstPorts: []hoststate.PortRange{{First: 80, Last: 80}}, ID: "r"})
	deny := pol("t1", "deny-w1", hoststate.Rule{Action: hoststate.Deny, SrcIPSetIDs: []string{"w1"}, ID: "r"})
	allowAll := pol("t2", "allow-all", hoststate.Rule{Action: hoststate.Allow, ID: "r"})
	pass := pol("t1", "pass", hoststate.Rule{Action: hoststate.Pass, ID: "r"})
	noMatch := pol("t1", "no-match", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(udp), ID: "r"})
	named := pol("t1", "named", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), DstNamedPortIPSetIDs: []string{"np-web"}, ID: "r"})
	notNetsSelf := pol("t1", "not-w1-net", hoststate.Rule{Action: hoststate.Allow, NotSrcNets: pfx("10.65.0.1/32"), ID: "r"})
	notNetsOther := pol("t1", "not-other-net", hoststate.Rule{Action: hoststate.Allow, NotSrcNets: pfx("10.99.0.0/16"), ID: "r"})
	icmpEcho := pol("t1", "icmp-echo", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(1), ICMPType: u8(8), ID: "r"})
	icmpNotEcho := pol("t1", "icmp-not-echo", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(1), NotICMPType: u8(8), ID: "r"})

	// Policies that compile into run lookups (compile.go).
	rangeNet := pol("t1", "range-net", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcNets: pfx("10.65.0.0/24"), DstPorts: []hoststate.PortRange{{First: 8000, Last: 9000}}, ID: "r"})
	overlapping := pol("t1", "overlapping", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcIPSetIDs: []string{"w1"}, DstPorts: []hoststate.PortRange{{First: 8500, Last: 9100}}, ID: "r"})
	denyRun := pol("t1", "deny-run", hoststate.Rule{Action: hoststate.Deny, Protocol: u8(tcp), SrcNets: pfx("10.65.0.0/30"), DstPorts: []hoststate.PortRange{{First: 9090, Last: 9090}}, ID: "r"})
	passRun := pol("t1", "pass-run", hoststate.Rule{Action: hoststate.Pass, Protocol: u8(tcp), DstPorts: []hoststate.PortRange{{First: 8080, Last: 8080}}, ID: "r"})
	otherSrc := pol("t1", "other-src", hoststate.Rule{Action: hoststate.Allow, Protocol: u8(tcp), SrcNets: pfx("10.99.0.0/16"), DstPorts: []hoststate.PortRange{{First: 1, Last: 65535}}, ID: "r"})

	t1 := func(ps ...hoststate.PolicyID) hoststate.TierPolicies { return tierIn("t1", hoststate.Deny, ps...) }
	t2 := func(ps ...hoststate.PolicyID) hoststate.TierPolicies { return tierIn("t2", hoststate.Deny, ps...) }

	type check struct {
		what  string
		try   func() error
		allow bool
	}
	to := func(port int) func() error {
		return func() error { return dial(tp.w1, "", fmt.Sprintf("10.65.0.2:%d", port)) }
	}
	cases := []struct {
		name     string
		tiers    []hoststate.TierPolicies
		profiles []string
		checks   []check
	}{
		{"no policy, no profile: dropped", nil, []string{"allow-out"}, []check{{"w1→w2:80", to(80), false}}},
		{"profile allow", nil, []string{"allow-all"}, []check{{"w1→w2:80", to(80), true}, {"w1→w2:9090", to(9090), true}, {"ping w2", func() error { return ping(tp.w1, "10.65.0.2") }, true}}},
		{"allow port 80, end of tier drops the rest", []hoststate.TierPolicies{t1(allow)}, []string{"allow-all"},
			[]check{{"w1→w2:80", to(80), true}, {"w1→w2:9090", to(9090), false}}},
		{"deny before allow", []hoststate.TierPolicies{t1(deny, allow)}, nil, []check{{"w1→w2:80", to(80), false}}},
		{"pass then allow in next tier", []hoststate.TierPolicies{t1(pass), t2(allowAll)}, nil, []check{{"w1→w2:9090", to(9090), true}}},
		{"end-of-tier deny before next tier's allow", []hoststate.TierPolicies{t1(noMatch), t2(allowAll)}, nil, []check{{"w1→w2:9090", to(9090), false}}},
		{"tier with Pass default goes on", []hoststate.TierPolicies{tierIn("t1", hoststate.Pass, noMatch), t2(allowAll)}, nil, []check{{"w1→w2:9090", to(9090), true}}},
		{"named port", []hoststate.TierPolicies{t1(named)}, nil, []check{{"w1→w2:8080", to(8080), true}, {"w1→w2:9090", to(9090), false}}},
		{"notNets excluding the source", []hoststate.TierPolicies{t1(notNetsSelf)}, nil, []check{{"w1→w2:80", to(80), false}}},
		{"notNets excluding another net", []hoststate.TierPolicies{t1(notNetsOther)}, nil, []check{{"w1→w2:80", to(80), true}}},
		{"icmp type allowed", []hoststate.TierPolicies{t1(icmpEcho)}, nil, []check{{"ping w2", func() error { return ping(tp.w1, "10.65.0.2") }, true}}},
		{"icmp notType", []hoststate.TierPolicies{t1(icmpNotEcho)}, nil, []check{{"ping w2", func() error { return ping(tp.w1, "10.65.0.2") }, false}}},
		{"compiled run: ranges and overlapping policies", []hoststate.TierPolicies{t1(otherSrc, rangeNet, overlapping)}, nil,
			[]check{{"w1→w2:8080", to(8080), true}, {"w1→w2:9090", to(9090), true}, {"w1→w2:80", to(80), false}}},
		{"compiled deny run before an allow run", []hoststate.TierPolicies{t1(denyRun, rangeNet)}, nil,
			[]check{{"w1→w2:9090", to(9090), false}, {"w1→w2:8080", to(8080), true}}},
		{"compiled pass run, then the next tier", []hoststate.TierPolicies{t1(passRun, denyRun, otherSrc), t2(allowAll)}, nil,
			[]check{{"w1→w2:8080", to(8080), true}, {"w1→w2:9090", to(9090), false}, {"w1→w2:80", to(80), false}}},
		{"compiled run after a jump keeps order", []hoststate.TierPolicies{t1(deny, rangeNet)}, nil,
			[]check{{"w1→w2:8080", to(8080), false}}},
		{"anti-spoofing", nil, []string{"allow-all"}, []check{
			{"w1 from 10.65.0.9 → w2:80", func() error { return dial(tp.w1, "10.65.0.9", "10.65.0.2:80") }, false},
			{"w1 from its own address → w2:80", func() error { return dial(tp.w1, "10.65.0.1", "10.65.0.2:80") }, true}}},
		{"workload to host dropped by default", nil, []string{"allow-all"}, []check{
			{"w1→host:2222", func() error { return dial(tp.w1, "", "10.0.0.100:2222") }, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp.w2Policy(t, c.tiers, c.profiles...)
			for _, ch := range c.checks {
				err := ch.try()
				if ch.allow && err != nil {
					t.Errorf("%s: want allowed, got %v", ch.what, err)
				}
				if !ch.allow && err == nil {
					t.Errorf("%s: want dropped, got through", ch.what)
				}
			}
		})
	}
	t.Run("workload to host with Accept", func(t *testing.T) {
		d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, DefaultEndpointToHostAction: "Accept"})
		if err := d.Apply(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := dial(tp.w1, "", "10.0.0.100:2222"); err != nil {
			t.Errorf("w1→host:2222 with Accept: %v", err)
		}
	})
	t.Run("anti-spoofing by MAC", func(t *testing.T) {
		mac := strings.TrimSpace(inNS(t, tp.w1Name, "cat", "/sys/class/net/eth0/address"))
		setW1MAC := func(m string) {
			ep := wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil, "allow-out")
			ep.MAC = m
			d.OnWorkloadEndpointUpdate(ep)
			if err := d.Apply(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		tp.w2Policy(t, nil, "allow-all")
		setW1MAC(mac)
		if err := dial(tp.w1, "", "10.65.0.2:80"); err != nil {
			t.Errorf("w1 with its own MAC → w2:80: %v", err)
		}
		inNS(t, tp.w1Name, "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99")
		defer inNS(t, tp.w1Name, "ip", "link", "set", "eth0", "address", mac)
		defer setW1MAC("")
		if err := dial(tp.w1, "", "10.65.0.2:80"); err == nil {
			t.Errorf("w1 sending from a MAC not its own → w2:80: got through")
		}
	})
	t.Run("routes and sysctls", func(t *testing.T) {
		got := inNS(t, tp.hostName, "ip", "route", "show", "proto", "80")
		want := "blackhole 10.65.0.0/26 \n10.65.0.1 dev cali1 scope link \n10.65.0.2 dev cali2 scope link \n"
		if got != want {
			t.Errorf("routes:\n%q\nwant\n%q", got, want)
		}
		for _, k := range []string{"net.ipv4.conf.cali1.proxy_arp", "net.ipv4.neigh.cali1.proxy_delay", "net.ipv4.ip_forward"} {
			t.Log(k, inNS(t, tp.hostName, "sysctl", "-n", k))
		}
		if v := inNS(t, tp.hostName, "sysctl", "-n", "net.ipv4.conf.cali2.proxy_arp"); v != "1\n" {
			t.Errorf("proxy_arp on cali2 = %q", v)
		}
	})
}
