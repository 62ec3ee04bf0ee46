package dataplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/hoststate"
)

// TestIPForwardingAndNATOutgoingAddressKernel: with ipForwarding Disabled
// the agent leaves the host's forwarding switch alone; natOutgoingAddress
// is the source another host sees for a natOutgoing workload's traffic.
func TestIPForwardingAndNATOutgoingAddressKernel(t *testing.T) {
	d := newKernelDP(t, "hcfg")
	extName, ext := newNetns(t, "hcfgext")
	wName, w := newNetns(t, "hcfgw")
	inNS(t, d.ns, "sh", "-c", "ip link set lo up && ip link add eth0 type veth peer name eth0 netns "+extName+
		" && ip link set eth0 up && ip addr add 10.0.0.100/24 dev eth0 && ip addr add 10.0.0.150/32 dev eth0 && ip route add default via 10.0.0.200"+
		" && ip link add cali1 type veth peer name eth0 netns "+wName+" && ip link set cali1 up")
	inNS(t, extName, "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 10.0.0.200/24 dev eth0")
	inNS(t, wName, "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 10.65.0.1/32 dev eth0"+
		" && ip route add 169.254.1.1 dev eth0 scope link && ip route add default via 169.254.1.1 dev eth0")
	peers := acceptLog(t, ext, "10.0.0.200:80")
	forwarding := func() string { return strings.TrimSpace(inNS(t, d.ns, "sysctl", "-n", "net.ipv4.ip_forward")) }

	d.OnProfileUpdate(hoststate.Profile{Name: "allow-all", InboundRules: []hoststate.Rule{{Action: hoststate.Allow}}, OutboundRules: []hoststate.Rule{{Action: hoststate.Allow}}})
	d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"), nil, "allow-all"))
	d.OnIPPoolUpdate("p", hoststate.IPPool{CIDR: pfx("10.65.0.0/16")[0], NATOutgoing: true})
	d.OnInSync()
	apply := func(cfg hoststate.Config) {
		t.Helper()
		cfg.InterfacePrefixes = []string{"cali"}
		d.OnConfigUpdate(cfg)
		if err := d.Apply(context.Background()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	apply(hoststate.Config{IPForwardingDisabled: true})
	if f := forwarding(); f != "0" {
		t.Fatalf("ipForwarding Disabled: net.ipv4.ip_forward = %s, want it left at 0", f)
	}
	if err := dial(w, "", "10.0.0.200:80"); err == nil {
		t.Errorf("workload reached another host though the host does not forward")
	}
	for _, c := range []struct {
		cfg  hoststate.Config
		from string
	}{
		{hoststate.Config{}, "10.0.0.100"},
		{hoststate.Config{NATOutgoingAddress: mustAddr("10.0.0.150")}, "10.0.0.150"},
	} {
		apply(c.cfg)
		if f := forwarding(); f != "1" {
			t.Fatalf("ipForwarding Enabled: net.ipv4.ip_forward = %s", f)
		}
		if err := dial(w, "", "10.0.0.200:80"); err != nil {
			t.Errorf("natOutgoingAddress %v: workload → other host: %v", c.cfg.NATOutgoingAddress, err)
			continue
		}
		select {
		case p := <-peers:
			if !strings.HasPrefix(p, c.from+":") {
				t.Errorf("natOutgoingAddress %v: other host saw the workload as %s, want %s", c.cfg.NATOutgoingAddress, p, c.from)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("other host saw no connection")
		}
	}
}
