package node

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/overlay"
)

// The host gets a tunnel address from a VXLAN pool that allows Tunnel use,
// and a MAC, both written into its Node; they are released when no pool
// needs them any more.
func TestOverlayTunnelAddress(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	ds := datastore.NewMemory(log)
	if _, err := Register(ctx, ds, Identity{Name: "h1", IPv4: netip.MustParsePrefix("10.0.1.11/24")}); err != nil {
		t.Fatal(err)
	}
	mk := func(name, cidr string, mode api.EncapMode, uses ...api.IPPoolAllowedUse) *api.IPPool {
		r, _ := api.New("IPPool")
		p := r.(*api.IPPool)
		p.Spec = api.IPPoolSpec{CIDR: cidr, VXLANMode: mode, AllowedUses: uses}
		p.Name = name
		p.SetDefaults()
		return p
	}
	workloadsOnly := mk("workloads", "192.168.0.0/16", api.EncapAlways, api.AllowedUseWorkload)
	tunnels := mk("tunnels", "10.200.0.0/16", api.EncapAlways, api.AllowedUseTunnel)
	for _, p := range []*api.IPPool{workloadsOnly, tunnels} {
		if _, err := ds.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	ip := ipam.New(ds, ipam.Config{})
	o := newOverlayLoop("h1", ds, OverlayDeps{IPAM: ip}, log, NewHealth(time.Now))
	round := func(pools ...*api.IPPool) *api.Node {
		t.Helper()
		r, err := ds.Get(ctx, api.Key{Kind: "Node", Name: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		in := overlay.Input{Node: "h1", Nodes: []*api.Node{r.(*api.Node)}, Pools: pools}
		if err := o.ensureTunnels(ctx, in, overlay.Compute(in)); err != nil {
			t.Fatalf("ensureTunnels: %v", err)
		}
		r, _ = ds.Get(ctx, api.Key{Kind: "Node", Name: "h1"})
		return r.(*api.Node)
	}
	n := round(workloadsOnly, tunnels)
	a, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
	if err != nil || !netip.MustParsePrefix("10.200.0.0/16").Contains(a) {
		t.Fatalf("tunnel address %q: want one from the pool that allows Tunnel", n.Spec.IPv4VXLANTunnelAddr)
	}
	if n.Spec.VXLANTunnelMACAddr != tunnelMAC("h1", false).String() {
		t.Fatalf("tunnel MAC %q", n.Spec.VXLANTunnelMACAddr)
	}
	if again := round(workloadsOnly, tunnels); again.Spec.IPv4VXLANTunnelAddr != n.Spec.IPv4VXLANTunnelAddr {
		t.Fatalf("a second round moved the tunnel address %s -> %s", n.Spec.IPv4VXLANTunnelAddr, again.Spec.IPv4VXLANTunnelAddr)
	}
	held, err := ip.IPsByHandle(ctx, tunnelHandle("h1", false))
	if err != nil || len(held) != 1 || held[0] != a {
		t.Fatalf("IPAM handle holds %v (%v), want [%s]", held, err, a)
	}

	// The pools go back to Never: the address is released and cleared.
	n = round(mk("workloads", "192.168.0.0/16", api.EncapNever), mk("tunnels", "10.200.0.0/16", api.EncapNever))
	if n.Spec.IPv4VXLANTunnelAddr != "" || n.Spec.VXLANTunnelMACAddr != "" {
		t.Fatalf("tunnel left in the Node: %q %q", n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr)
	}
	if held, _ := ip.IPsByHandle(ctx, tunnelHandle("h1", false)); len(held) != 0 {
		t.Fatalf("IPAM still holds %v", held)
	}
}

// An IPIP pool on a kernel without IPIP makes the host unready, saying why.
func TestOverlayIPIPUnavailableIsReported(t *testing.T) {
	p := &api.IPPool{Spec: api.IPPoolSpec{CIDR: "192.168.0.0/16", IPIPMode: api.EncapAlways}}
	p.Name = "ipip"
	p.SetDefaults()
	d := overlay.Compute(overlay.Input{Node: "h1", Pools: []*api.IPPool{p}})
	h := NewHealth(time.Now)
	h.SetInSync(true)
	h.SetProgrammed(nil)
	h.SetOverlayProblems(d.Problems)
	r := h.Report()
	if r.Ready || len(r.Reasons) != 1 || !strings.HasPrefix(r.Reasons[0], "overlay: ") || !strings.Contains(r.Reasons[0], "ipipMode") {
		t.Fatalf("report %+v: want not ready with one overlay reason", r)
	}
}

// A deleted Node's tunnel address goes with it.
func TestOverlayReleasesDeletedNodesTunnel(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	ds := datastore.NewMemory(log)
	r, _ := api.New("IPPool")
	p := r.(*api.IPPool)
	p.Name, p.Spec = "overlay", api.IPPoolSpec{CIDR: "10.244.0.0/16", VXLANMode: api.EncapAlways}
	p.SetDefaults()
	if _, err := ds.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	ip := ipam.New(ds, ipam.Config{})
	res, err := ip.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: tunnelHandle("h2", false), Node: "h2", IPv4Pools: []string{"overlay"}})
	if err != nil || len(res.IPv4) != 1 {
		t.Fatalf("allocating h2's tunnel address: %v", err)
	}
	o := newOverlayLoop("h1", ds, OverlayDeps{IPAM: ip}, log, NewHealth(time.Now))
	o.OnUpdates([]datastore.Update{{Type: datastore.Deleted, Key: api.Key{Kind: "Node", Name: "h2"}}})
	o.releaseGone(ctx)
	if held, _ := ip.IPsByHandle(ctx, tunnelHandle("h2", false)); len(held) != 0 {
		t.Fatalf("h2 is gone but its tunnel address %v is still held", held)
	}
}

// On a kernel with IPIP, an IPIP pool gives the host an IPIP tunnel
// address in its Node (spec.bgp.ipv4IPIPTunnelAddr), released after.
func TestOverlayIPIPTunnelAddress(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	ds := datastore.NewMemory(log)
	if _, err := Register(ctx, ds, Identity{Name: "h1", IPv4: netip.MustParsePrefix("10.0.1.11/24")}); err != nil {
		t.Fatal(err)
	}
	r, _ := api.New("IPPool")
	p := r.(*api.IPPool)
	p.Name, p.Spec = "ipip", api.IPPoolSpec{CIDR: "10.244.0.0/16", IPIPMode: api.EncapAlways}
	p.SetDefaults()
	if _, err := ds.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	o := newOverlayLoop("h1", ds, OverlayDeps{IPAM: ipam.New(ds, ipam.Config{})}, log, NewHealth(time.Now))
	round := func(pools ...*api.IPPool) string {
		t.Helper()
		r, err := ds.Get(ctx, api.Key{Kind: "Node", Name: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		in := overlay.Input{Node: "h1", Nodes: []*api.Node{r.(*api.Node)}, Pools: pools, IPIPAvailable: true}
		if err := o.ensureTunnels(ctx, in, overlay.Compute(in)); err != nil {
			t.Fatalf("ensureTunnels: %v", err)
		}
		r, _ = ds.Get(ctx, api.Key{Kind: "Node", Name: "h1"})
		return r.(*api.Node).Spec.BGP.IPv4IPIPTunnelAddr
	}
	a, err := netip.ParseAddr(round(p))
	if err != nil || !netip.MustParsePrefix("10.244.0.0/16").Contains(a) {
		t.Fatalf("IPIP tunnel address %v (%v): want one from the IPIP pool", a, err)
	}
	never := *p
	never.Spec.IPIPMode = api.EncapNever
	if got := round(&never); got != "" {
		t.Fatalf("IPIP tunnel address %q left after the pool went to Never", got)
	}
}

// A remote workload whose address lies outside every block of its host
// (borrowed) is routed by itself; one inside its host's block is not.
func TestOverlayInputBorrowedAddresses(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	o := newOverlayLoop("h1", datastore.NewMemory(log), OverlayDeps{}, log, NewHealth(time.Now))
	aff := &api.BlockAffinity{Spec: api.BlockAffinitySpec{State: api.AffinityConfirmed, Node: "h2", CIDR: "10.244.1.0/26"}}
	wep := func(name, node, ip string) datastore.Update {
		w := &api.WorkloadEndpoint{Spec: api.WorkloadEndpointSpec{Node: node, IPNetworks: []string{ip}}}
		return datastore.Update{Type: datastore.Added, Key: api.Key{Kind: "WorkloadEndpoint", Name: name}, Object: w}
	}
	o.OnUpdates([]datastore.Update{
		{Type: datastore.Added, Key: api.Key{Kind: "BlockAffinity", Name: "a"}, Object: aff},
		wep("inside", "h2", "10.244.1.5/32"),
		wep("borrowed", "h2", "10.244.0.7/32"),
		wep("local", "h1", "10.244.0.8/32"),
	})
	o.OnStatus(datastore.InSync)
	in, ok := o.input()
	if !ok {
		t.Fatal("not in sync")
	}
	var got []string
	for _, b := range in.Blocks {
		got = append(got, b.CIDR.String()+"@"+b.Node)
	}
	want := []string{"10.244.0.7/32@h2", "10.244.1.0/26@h2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("blocks %v, want %v", got, want)
	}
	// The workload goes: so does its route.
	o.OnUpdates([]datastore.Update{{Type: datastore.Deleted, Key: api.Key{Kind: "WorkloadEndpoint", Name: "borrowed"}}})
	if in, _ := o.input(); len(in.Blocks) != 1 {
		t.Fatalf("after the delete: blocks %v", in.Blocks)
	}
}
