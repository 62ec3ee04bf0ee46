package dataplane

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// twoSidedHost builds a host namespace with eth0 (10.0.0.100) towards
// namespace ext0 (10.0.0.200) and eth1 (10.1.0.100) towards ext1
// (10.1.0.200), and a server on the host's port 2222, 3333 and 4444.
func twoSidedHost(t *testing.T, tag string) (d *kernelDP, ext0, ext1 string) {
	d = newKernelDP(t, tag)
	ext0, _ = newNetns(t, tag+"x0")
	ext1, _ = newNetns(t, tag+"x1")
	inNS(t, d.ns, "sh", "-c", "ip link set lo up"+
		" && ip link add eth0 type veth peer name eth0 netns "+ext0+" && ip link set eth0 up && ip addr add 10.0.0.100/24 dev eth0"+
		" && ip link add eth1 type veth peer name eth0 netns "+ext1+" && ip link set eth1 up && ip addr add 10.1.0.100/24 dev eth1")
	inNS(t, ext0, "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 10.0.0.200/24 dev eth0")
	inNS(t, ext1, "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add 10.1.0.200/24 dev eth0")
	for _, p := range []string{"2222", "3333", "4444"} {
		listen(t, d.h, "0.0.0.0:"+p)
	}
	return d, ext0, ext1
}

func expectDial(t *testing.T, fromNS, to string, allow bool, what string) {
	t.Helper()
	h := nsHandle(t, fromNS)
	err := dial(h, "", to)
	if allow && err != nil {
		t.Errorf("%s: %s → %s: want allowed, got %v", what, fromNS, to, err)
	}
	if !allow && err == nil {
		t.Errorf("%s: %s → %s: want dropped, got through", what, fromNS, to)
	}
}

// TestHostEndpointExpectedIPsPackets: a host endpoint with expectedIPs
// only is enforced on the interface that carries the address, found when
// the address appears (after an interface refresh), and only there.
func TestHostEndpointExpectedIPsPackets(t *testing.T) {
	d, ext0, ext1 := twoSidedHost(t, "hepip")
	d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, FailsafeInboundHostPorts: []hoststate.ProtoPort{{Protocol: tcp, Port: 22}}})
	d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "by-ip", ExpectedIPs: []netip.Addr{mustAddr("10.9.9.9")}})
	d.OnInSync()
	apply := func() {
		t.Helper()
		if err := d.Apply(context.Background()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	apply()
	expectDial(t, ext1, "10.1.0.100:2222", true, "no interface has the address yet")
	inNS(t, d.ns, "ip", "addr", "add", "10.9.9.9/32", "dev", "eth1")
	d.refreshInterfaces()
	apply()
	expectDial(t, ext1, "10.1.0.100:2222", false, "eth1 carries the address: the endpoint (no policy) denies")
	expectDial(t, ext0, "10.0.0.100:2222", true, "eth0 is no part of the endpoint")
	inNS(t, d.ns, "ip", "addr", "del", "10.9.9.9/32", "dev", "eth1")
	inNS(t, d.ns, "ip", "addr", "add", "10.9.9.9/32", "dev", "eth0")
	d.refreshInterfaces()
	apply()
	expectDial(t, ext1, "10.1.0.100:2222", true, "the address left eth1")
	expectDial(t, ext0, "10.0.0.100:2222", false, "the address moved to eth0")
}

// TestTwoWildcardHostEndpointsPackets: two "*" host endpoints, each
// selected by a policy opening one port, go through the calculation graph
// into the kernel: both ports are open on every interface (the union), any
// other is closed; with one endpoint gone, its port closes.
func TestTwoWildcardHostEndpointsPackets(t *testing.T) {
	d, ext0, ext1 := twoSidedHost(t, "hepall")
	g := calc.New("host1", d, nil)
	hep := func(name, role string) *api.HostEndpoint {
		h := &api.HostEndpoint{TypeMeta: api.TypeMeta{Kind: "HostEndpoint"}}
		h.Name, h.Labels = name, map[string]string{"role": role}
		h.Spec = api.HostEndpointSpec{Node: "host1", InterfaceName: "*"}
		return h
	}
	allowPort := func(name, role string, port int) *api.GlobalNetworkPolicy {
		p := &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy"}}
		tcpP := api.ProtocolFromString("TCP")
		p.Name, p.Spec.Selector = name, "role == '"+role+"'"
		p.Spec.Ingress = []api.Rule{{Action: api.Allow, Protocol: &tcpP, Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(port)}}}}
		p.SetDefaults()
		return p
	}
	upd := func(t datastore.EventType, objs ...api.Resource) []datastore.Update {
		var us []datastore.Update
		for _, o := range objs {
			us = append(us, datastore.Update{Type: t, Key: api.KeyOf(o), Object: o})
		}
		return us
	}
	a, b := hep("all-a", "a"), hep("all-b", "b")
	g.OnStatus(datastore.ResyncInProgress)
	g.OnUpdates(upd(datastore.Modified, a, b, allowPort("pa", "a", 2222), allowPort("pb", "b", 3333)))
	g.OnStatus(datastore.InSync)
	if err := d.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, ns := range []struct{ name, host string }{{ext0, "10.0.0.100"}, {ext1, "10.1.0.100"}} {
		expectDial(t, ns.name, ns.host+":2222", true, "port of all-a's policy")
		expectDial(t, ns.name, ns.host+":3333", true, "port of all-b's policy")
		expectDial(t, ns.name, ns.host+":4444", false, "port of no policy")
	}
	g.OnUpdates(upd(datastore.Deleted, a))
	if err := d.Apply(context.Background()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	expectDial(t, ext0, "10.0.0.100:2222", false, "all-a gone")
	expectDial(t, ext0, "10.0.0.100:3333", true, "all-b stays")
}

func nsHandle(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestWatchHostKernel: WatchHost reports an address added in the
// namespace it watches.
func TestWatchHostKernel(t *testing.T) {
	needRoot(t)
	name, h := newNetns(t, "watch")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := WatchHost(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	inNS(t, name, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	inNS(t, name, "ip", "addr", "add", "10.9.9.9/32", "dev", "d0")
	select {
	case <-ch:
	case <-time.After(3 * time.Second):
		t.Fatal("no change reported for a new interface and address")
	}
}
