package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
)

type env struct {
	t   *testing.T
	ctx context.Context
	ds  datastore.Interface
	c   *ipam.Client
}

func newEnv(t *testing.T, objs ...api.Resource) *env {
	t.Helper()
	ds := datastore.NewMemory(nil)
	t.Cleanup(func() { ds.Close() })
	e := &env{t: t, ctx: context.Background(), ds: ds, c: ipam.New(ds, ipam.Config{})}
	e.create(objs...)
	return e
}

func (e *env) create(objs ...api.Resource) {
	e.t.Helper()
	for _, o := range objs {
		if _, err := e.ds.Create(e.ctx, o); err != nil {
			e.t.Fatalf("creating %s: %v", api.KeyOf(o), err)
		}
	}
}

func ippool(name, cidr string, blockSize int, edit ...func(*api.IPPoolSpec)) *api.IPPool {
	p := &api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: name},
		Spec: api.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}}
	for _, f := range edit {
		f(&p.Spec)
	}
	return p
}

func node(name string, labels map[string]string) *api.Node {
	return &api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: name, Labels: labels}}
}

func ipamConfig(strict bool, maxBlocks int) *api.IPAMConfiguration {
	return &api.IPAMConfiguration{TypeMeta: api.TypeMeta{Kind: "IPAMConfiguration"}, ObjectMeta: api.ObjectMeta{Name: "default"},
		Spec: api.IPAMConfigurationSpec{StrictAffinity: strict, MaxBlocksPerHost: maxBlocks}}
}

func reservation(name string, cidrs ...string) *api.IPReservation {
	return &api.IPReservation{TypeMeta: api.TypeMeta{Kind: "IPReservation"}, ObjectMeta: api.ObjectMeta{Name: name},
		Spec: api.IPReservationSpec{ReservedCIDRs: cidrs}}
}

// assign allocates n IPv4 addresses, one handle each, named prefix-i.
func (e *env) assign(nodeName, prefix string, n int) ([]netip.Addr, error) {
	var out []netip.Addr
	for i := range n {
		res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprintf("%s-%d", prefix, i), Node: nodeName,
			Attrs: map[string]string{ipam.AttrNode: nodeName}})
		if err != nil {
			return out, err
		}
		out = append(out, res.IPv4...)
	}
	return out, nil
}

func (e *env) mustAssign(nodeName, prefix string, n int) []netip.Addr {
	e.t.Helper()
	out, err := e.assign(nodeName, prefix, n)
	if err != nil {
		e.t.Fatalf("assigning %d on %s: %v", n, nodeName, err)
	}
	return out
}

// blocks returns block CIDR → affine node ("" for none).
func (e *env) blocks() map[string]string {
	e.t.Helper()
	res, err := e.ds.List(e.ctx, datastore.ListOptions{Kind: "IPAMBlock"})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range res.Items {
		b := r.(*api.IPAMBlock)
		out[b.Spec.CIDR] = strings.TrimPrefix(deref(b.Spec.Affinity), "host:")
	}
	return out
}

// affinities returns "node cidr" → state.
func (e *env) affinities() map[string]api.AffinityState {
	e.t.Helper()
	res, err := e.ds.List(e.ctx, datastore.ListOptions{Kind: "BlockAffinity"})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]api.AffinityState{}
	for _, r := range res.Items {
		a := r.(*api.BlockAffinity)
		out[a.Spec.Node+" "+a.Spec.CIDR] = a.Spec.State
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func distinctIn(t *testing.T, addrs []netip.Addr, cidr string) {
	t.Helper()
	p := netip.MustParsePrefix(cidr)
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Errorf("%s handed out twice", a)
		}
		seen[a] = true
		if !p.Contains(a) {
			t.Errorf("%s is outside %s", a, cidr)
		}
	}
}

func TestBlockClaimAndFill(t *testing.T) {
	e := newEnv(t, ippool("pool1", "10.65.0.0/16", 26))
	got := e.mustAssign("host1", "w", 65)
	distinctIn(t, got, "10.65.0.0/16")
	blocks := e.blocks()
	if len(blocks) != 2 {
		t.Fatalf("blocks %v, want 2 (64 addresses, then one more)", blocks)
	}
	for cidr, n := range blocks {
		if n != "host1" {
			t.Errorf("block %s affine to %q, want host1", cidr, n)
		}
		p := netip.MustParsePrefix(cidr)
		if e.affinities()["host1 "+cidr] != api.AffinityConfirmed {
			t.Errorf("affinity of %s: %v, want confirmed", cidr, e.affinities())
		}
		if p.Bits() != 26 {
			t.Errorf("block %s is not a /26", cidr)
		}
	}
	// The first 64 addresses fill one block before another is claimed.
	first := netip.PrefixFrom(got[0], 26).Masked()
	for _, a := range got[:64] {
		if !first.Contains(a) {
			t.Errorf("%s is not in the first block %s", a, first)
		}
	}
	// A second host gets a block of its own.
	other := e.mustAssign("host2", "v", 1)
	if b := e.blocks()[netip.PrefixFrom(other[0], 26).Masked().String()]; b != "host2" {
		t.Errorf("host2's address %s is in a block affine to %q", other[0], b)
	}
}

func TestAllocationLimits(t *testing.T) {
	// Pool 10.70.0.0/27 in /28 blocks: two blocks of 16.
	small := ippool("small", "10.70.0.0/27", 28)
	cases := []struct {
		name      string
		objs      []api.Resource
		host1     int // allocated first on host1
		host2     int // then asked for on host2
		wantErr   error
		wantMsg   []string
		host2From string // "" or the node whose block host2's last address is in
	}{
		{name: "borrow when no block is free", objs: []api.Resource{small}, host1: 20, host2: 1, host2From: "host1"},
		{name: "strictAffinity forbids borrowing", objs: []api.Resource{small, ipamConfig(true, 0)}, host1: 20, host2: 1,
			wantErr: ipam.ErrPoolsExhausted, wantMsg: []string{`"small" (10.70.0.0/27)`, "strictAffinity"}},
		{name: "exhausted names the pool", objs: []api.Resource{small}, host1: 20, host2: 13,
			wantErr: ipam.ErrPoolsExhausted, wantMsg: []string{`no free address in pool(s) "small" (10.70.0.0/27)`}},
		{name: "block limit then borrow", objs: []api.Resource{ippool("p", "10.70.0.0/24", 28), ipamConfig(false, 1)}, host1: 10, host2: 20,
			host2From: "host1"},
		{name: "block limit with strictAffinity", objs: []api.Resource{ippool("p", "10.70.0.0/24", 28), ipamConfig(true, 1)}, host1: 1, host2: 17,
			wantErr: ipam.ErrBlockLimit, wantMsg: []string{`node "host2" owns 1 IPv4 blocks`, "maxBlocksPerHost 1"}},
		{name: "block limit with nothing to borrow", objs: []api.Resource{ippool("p", "10.70.0.0/24", 28), ipamConfig(false, 2)}, host1: 0, host2: 33,
			wantErr: ipam.ErrBlockLimit, wantMsg: []string{"maxBlocksPerHost 2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.objs...)
			e.mustAssign("host1", "a", c.host1)
			got, err := e.assign("host2", "b", c.host2)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("host2: error %v, want %v", err, c.wantErr)
			}
			for _, m := range c.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
			if c.name == "exhausted names the pool" && len(got) != 12 {
				t.Errorf("host2 got %d addresses before the pool ran out, want 12", len(got))
			}
			if c.host2From != "" {
				last := got[len(got)-1]
				blocks := e.blocks()
				for cidr, n := range blocks {
					if netip.MustParsePrefix(cidr).Contains(last) && n != c.host2From {
						t.Errorf("host2's %s is in %s, affine to %q; want %q", last, cidr, n, c.host2From)
					}
				}
			}
			if c.wantErr != nil {
				// All or nothing: the failed request holds nothing.
				ips, _ := e.c.IPsByHandle(e.ctx, fmt.Sprintf("b-%d", len(got)))
				if len(ips) != 0 {
					t.Errorf("the failed request kept %v", ips)
				}
			}
			// The limit is never exceeded.
			perNode := map[string]int{}
			for _, n := range e.blocks() {
				perNode[n]++
			}
			for _, o := range c.objs {
				if cfg, ok := o.(*api.IPAMConfiguration); ok && cfg.Spec.MaxBlocksPerHost > 0 {
					for n, k := range perNode {
						if k > cfg.Spec.MaxBlocksPerHost {
							t.Errorf("node %s owns %d blocks, limit %d", n, k, cfg.Spec.MaxBlocksPerHost)
						}
					}
				}
			}
		})
	}
}

func TestPoolSelection(t *testing.T) {
	rackA := ippool("rack-a", "10.1.0.0/24", 26, func(s *api.IPPoolSpec) { s.NodeSelector = "rack == 'a'" })
	rackB := ippool("rack-b", "10.2.0.0/24", 26, func(s *api.IPPoolSpec) { s.NodeSelector = "rack == 'b'" })
	all := ippool("all", "10.3.0.0/24", 26)
	off := ippool("off", "10.4.0.0/24", 26, func(s *api.IPPoolSpec) { s.Disabled = true })
	manual := ippool("manual", "10.5.0.0/24", 26, func(s *api.IPPoolSpec) { m := api.AssignmentManual; s.AssignmentMode = &m })
	notRack := ippool("not-rack", "10.6.0.0/24", 26, func(s *api.IPPoolSpec) { s.NodeSelector = "!has(rack)" })
	v6 := ippool("v6", "fd00:1::/120", 122)
	cases := []struct {
		name      string
		objs      []api.Resource
		node      string
		requested []string
		want      string // the pool CIDR the address must be in
		wantErr   error
		wantMsg   string
	}{
		{"selector matches labels", []api.Resource{rackA, rackB, node("n1", map[string]string{"rack": "a"})}, "n1", nil, "10.1.0.0/24", nil, ""},
		{"other rack", []api.Resource{rackA, rackB, node("n2", map[string]string{"rack": "b"})}, "n2", nil, "10.2.0.0/24", nil, ""},
		{"missing node: only all() pools", []api.Resource{rackA, notRack, all}, "ghost", nil, "10.3.0.0/24", nil, ""},
		{"missing node and no all() pool", []api.Resource{rackA, notRack}, "ghost", nil, "", ipam.ErrNoPool, `node "ghost" (it has no Node resource`},
		{"no pool selects node", []api.Resource{rackA, node("n3", map[string]string{"rack": "c"})}, "n3", nil, "", ipam.ErrNoPool, `no enabled IPv4 pool selects node "n3"`},
		{"disabled pool skipped", []api.Resource{off, all}, "n", nil, "10.3.0.0/24", nil, ""},
		{"only a disabled pool", []api.Resource{off}, "n", nil, "", ipam.ErrNoPool, "no enabled IPv4 pool"},
		{"manual pool skipped", []api.Resource{manual, all}, "n", nil, "10.3.0.0/24", nil, ""},
		{"manual pool by name", []api.Resource{manual, all}, "n", []string{"manual"}, "10.5.0.0/24", nil, ""},
		{"requested by CIDR", []api.Resource{rackA, all}, "n", []string{"10.3.0.0/24"}, "10.3.0.0/24", nil, ""},
		{"requested pool missing", []api.Resource{all}, "n", []string{"nope"}, "", ipam.ErrNoPool, `requested pool "nope" does not exist`},
		{"requested pool disabled", []api.Resource{off, all}, "n", []string{"off"}, "", ipam.ErrNoPool, `requested pool "off" (10.4.0.0/24) is disabled`},
		{"requested pool wrong family", []api.Resource{v6, all}, "n", []string{"v6"}, "", ipam.ErrNoPool, "is not an IPv4 pool"},
		{"requested pool not for this node", []api.Resource{rackA, node("n2", map[string]string{"rack": "b"})}, "n2", []string{"rack-a"}, "", ipam.ErrNoPool, "none of the requested pools rack-a selects"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.objs...)
			res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "h", Node: c.node, IPv4Pools: c.requested})
			if !errors.Is(err, c.wantErr) || (err != nil && !strings.Contains(err.Error(), c.wantMsg)) {
				t.Fatalf("error %v, want %v saying %q", err, c.wantErr, c.wantMsg)
			}
			if err != nil {
				return
			}
			if len(res.IPv4) != 1 || !netip.MustParsePrefix(c.want).Contains(res.IPv4[0]) {
				t.Errorf("got %v, want one address in %s", res.IPv4, c.want)
			}
		})
	}
}

func TestReservations(t *testing.T) {
	e := newEnv(t, ippool("p", "10.9.0.0/28", 28), reservation("r1", "10.9.0.0/30", "10.9.0.8"), reservation("r2", "10.9.0.13/32"))
	got, err := e.assign("n", "w", 10) // 16 less 6 reserved
	if err != nil {
		t.Fatal(err)
	}
	reserved := []string{"10.9.0.0", "10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.8", "10.9.0.13"}
	for _, a := range got {
		if slices.Contains(reserved, a.String()) {
			t.Errorf("reserved address %s handed out", a)
		}
	}
	if _, err := e.assign("n", "x", 1); !errors.Is(err, ipam.ErrPoolsExhausted) {
		t.Errorf("11th address: %v, want ErrPoolsExhausted (the rest is reserved)", err)
	}
	// Asking for a reserved address by name is what reserving is for.
	if err := e.c.AssignIP(e.ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr("10.9.0.8"), Handle: "static", Node: "n"}); err != nil {
		t.Errorf("AssignIP of a reserved address: %v", err)
	}
	// A pool whose every block is reserved claims nothing.
	e2 := newEnv(t, ippool("p", "10.9.0.0/27", 28), reservation("r", "10.9.0.0/28"))
	got2 := e2.mustAssign("n", "w", 3)
	distinctIn(t, got2, "10.9.0.16/28")
	if _, ok := e2.blocks()["10.9.0.0/28"]; ok {
		t.Errorf("a wholly reserved block was claimed: %v", e2.blocks())
	}
}

func TestAssignIP(t *testing.T) {
	e := newEnv(t, ippool("p", "10.8.0.0/24", 26), ippool("off", "10.7.0.0/24", 26, func(s *api.IPPoolSpec) { s.Disabled = true }),
		ippool("v6", "fd00:8::/120", 122))
	cases := []struct {
		name    string
		ip      string
		handle  string
		wantErr error
		wantMsg string
	}{
		{"free address", "10.8.0.77", "h1", nil, ""},
		{"same address again", "10.8.0.77", "h2", ipam.ErrInUse, `held by handle "h1"`},
		{"another in the same block", "10.8.0.78", "h2", nil, ""},
		{"IPv6", "fd00:8::5", "h3", nil, ""},
		{"outside every pool", "192.168.1.1", "h4", ipam.ErrNotInPool, "192.168.1.1"},
		{"in a disabled pool", "10.7.0.1", "h4", ipam.ErrNotInPool, `its pool "off" (10.7.0.0/24) is disabled`},
		{"no handle", "10.8.0.90", "", ipam.ErrInvalidArgument, "a handle is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := e.c.AssignIP(e.ctx, ipam.AssignIPArgs{IP: netip.MustParseAddr(c.ip), Handle: c.handle, Node: "n1"})
			if !errors.Is(err, c.wantErr) || (err != nil && !strings.Contains(err.Error(), c.wantMsg)) {
				t.Fatalf("error %v, want %v saying %q", err, c.wantErr, c.wantMsg)
			}
		})
	}
	if b := e.blocks()["10.8.0.64/26"]; b != "n1" {
		t.Errorf("the requested address's block is affine to %q, want n1 (claimed on demand)", b)
	}
	ips, err := e.c.IPsByHandle(e.ctx, "h2")
	if err != nil || len(ips) != 1 || ips[0].String() != "10.8.0.78" {
		t.Errorf("IPsByHandle(h2) = %v, %v; want [10.8.0.78] (a failed request adds nothing)", ips, err)
	}
	// Automatic assignment on n1 now uses the claimed block, skipping what is taken.
	res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "auto", Node: "n1"})
	if err != nil || res.IPv4[0].String() != "10.8.0.64" {
		t.Errorf("AutoAssign = %v, %v; want 10.8.0.64 from n1's block", res, err)
	}
}

func TestOldestFirstReuse(t *testing.T) {
	e := newEnv(t, ippool("p", "10.10.0.0/30", 30))
	a := e.mustAssign("n", "first", 2) // .0 .1
	if err := e.c.ReleaseByHandle(e.ctx, "first-0"); err != nil {
		t.Fatal(err)
	}
	var order []string
	for i := range 3 {
		res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprint("next-", i), Node: "n"})
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, res.IPv4[0].String())
	}
	// Never-used addresses first, the just-freed .0 last.
	want := []string{"10.10.0.2", "10.10.0.3", a[0].String()}
	if !slices.Equal(order, want) {
		t.Errorf("allocation order %v, want %v", order, want)
	}
	// Two freed addresses come back in the order they were freed.
	for _, h := range []string{"next-1", "next-0"} { // .3 then .2
		if err := e.c.ReleaseByHandle(e.ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	got := e.mustAssign("n", "again", 2)
	if got[0].String() != "10.10.0.3" || got[1].String() != "10.10.0.2" {
		t.Errorf("reuse order %v, want [10.10.0.3 10.10.0.2]", got)
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	e := newEnv(t, ippool("p", "10.11.0.0/24", 26), ippool("p6", "fd00:11::/120", 122))
	res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 2, Num6: 1, Handle: "net.c1", Node: "n",
		Attrs: map[string]string{ipam.AttrNamespace: "ns", ipam.AttrWorkload: "pod1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPv4) != 2 || len(res.IPv6) != 1 || !netip.MustParsePrefix("fd00:11::/120").Contains(res.IPv6[0]) {
		t.Fatalf("got %+v, want 2 IPv4 and 1 IPv6 in fd00:11::/120", res)
	}
	ips, err := e.c.IPsByHandle(e.ctx, "net.c1")
	if err != nil || len(ips) != 3 {
		t.Fatalf("IPsByHandle = %v, %v; want 3", ips, err)
	}
	al, err := e.c.Lookup(e.ctx, res.IPv6[0])
	if err != nil || !al.Allocated || al.Handle != "net.c1" || al.Attrs[ipam.AttrWorkload] != "pod1" || al.BlockNode != "n" {
		t.Errorf("Lookup(%s) = %+v, %v", res.IPv6[0], al, err)
	}
	for i := range 3 {
		if err := e.c.ReleaseByHandle(e.ctx, "net.c1"); err != nil {
			t.Fatalf("release %d: %v", i+1, err)
		}
	}
	if err := e.c.ReleaseByHandle(e.ctx, "never-existed"); err != nil {
		t.Errorf("releasing an unknown handle: %v", err)
	}
	if ips, _ := e.c.IPsByHandle(e.ctx, "net.c1"); len(ips) != 0 {
		t.Errorf("after release the handle holds %v", ips)
	}
	if _, err := e.ds.Get(e.ctx, api.Key{Kind: "IPAMHandle", Name: "net.c1"}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("handle resource after release: %v, want not found", err)
	}
	// ReleaseIPs reports what was not allocated, and keeps counts right.
	got := e.mustAssign("n", "w", 2)
	na, err := e.c.ReleaseIPs(e.ctx, got[0], netip.MustParseAddr("10.11.0.200"), netip.MustParseAddr("192.0.2.1"))
	if err != nil || len(na) != 2 {
		t.Errorf("ReleaseIPs = %v, %v; want the two unallocated addresses back", na, err)
	}
	if _, err := e.ds.Get(e.ctx, api.Key{Kind: "IPAMHandle", Name: "w-0"}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("handle w-0 after its only address was released: %v, want deleted", err)
	}
	u, err := e.c.Usage(e.ctx)
	if err != nil || u.Pools[0].InUse != 1 || u.Pools[1].InUse != 0 {
		t.Errorf("usage %+v, %v; want 1 in use in p, 0 in p6", u, err)
	}
}

func TestAllOrNothing(t *testing.T) {
	e := newEnv(t, ippool("p", "10.12.0.0/24", 26))
	_, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: "h", Node: "n"})
	if !errors.Is(err, ipam.ErrNoPool) || !strings.Contains(err.Error(), "IPv6") {
		t.Fatalf("error %v, want ErrNoPool for IPv6", err)
	}
	if u, _ := e.c.Usage(e.ctx); u.Pools[0].InUse != 0 {
		t.Errorf("the IPv4 address of the failed request is still allocated: %+v", u.Pools[0])
	}
	if _, err := e.ds.Get(e.ctx, api.Key{Kind: "IPAMHandle", Name: "h"}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("handle after a failed request: %v, want none", err)
	}
}

func TestBadArguments(t *testing.T) {
	e := newEnv(t, ippool("p", "10.13.0.0/24", 26))
	cases := []ipam.AutoAssignArgs{
		{Num4: 1, Node: "n"},
		{Num4: 1, Handle: "h"},
		{Num4: 1, Handle: "h", Node: "Bad_Node"},
		{Num4: -1, Handle: "h", Node: "n"},
		{Num4: 5000, Handle: "h", Node: "n"},
	}
	for _, a := range cases {
		if _, err := e.c.AutoAssign(e.ctx, a); !errors.Is(err, ipam.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", a, err)
		}
	}
	if err := e.c.ReleaseByHandle(e.ctx, ""); !errors.Is(err, ipam.ErrInvalidArgument) {
		t.Errorf("ReleaseByHandle(\"\"): %v", err)
	}
}

func TestReleaseNode(t *testing.T) {
	e := newEnv(t, ippool("p", "10.14.0.0/24", 28), node("keep", nil))
	held := e.mustAssign("gone", "a", 17) // two blocks: 16 + 1
	e.mustAssign("keep", "k", 1)
	// Empty the second block of "gone".
	if err := e.c.ReleaseByHandle(e.ctx, "a-16"); err != nil {
		t.Fatal(err)
	}
	full := netip.PrefixFrom(held[0], 28).Masked().String()
	empty := netip.PrefixFrom(held[16], 28).Masked().String()

	released, err := e.c.ReleaseMissingNodes(e.ctx)
	if err != nil || !slices.Equal(released, []string{"gone"}) {
		t.Fatalf("ReleaseMissingNodes = %v, %v; want [gone]", released, err)
	}
	blocks := e.blocks()
	if n, ok := blocks[full]; !ok || n != "" {
		t.Errorf("block %s still in use: present %v, affine to %q; want present, unaffine", full, ok, n)
	}
	if _, ok := blocks[empty]; ok {
		t.Errorf("empty block %s of the removed node still exists", empty)
	}
	for k := range e.affinities() {
		if strings.HasPrefix(k, "gone ") {
			t.Errorf("affinity %q left", k)
		}
	}
	// Its addresses stay allocated while endpoints use them...
	if ips, _ := e.c.IPsByHandle(e.ctx, "a-3"); len(ips) != 1 {
		t.Errorf("a-3 lost its address: %v", ips)
	}
	// ... and the block goes once the last is released.
	for i := range 16 {
		if err := e.c.ReleaseByHandle(e.ctx, fmt.Sprint("a-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := e.blocks()[full]; ok {
		t.Errorf("empty unaffine block %s was not deleted", full)
	}
	if again, err := e.c.ReleaseMissingNodes(e.ctx); err != nil || len(again) != 0 {
		t.Errorf("second ReleaseMissingNodes = %v, %v; want nothing to do", again, err)
	}
	if err := e.c.ReleaseNode(e.ctx, "gone"); err != nil {
		t.Errorf("ReleaseNode of an already released node: %v", err)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, ippool("p", "10.15.0.0/24", 28), node("n1", nil))
	got := e.mustAssign("n1", "w", 2)
	e.mustAssign("ghost", "g", 1)
	wep := func(name, ip string) *api.WorkloadEndpoint {
		return &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: api.WorkloadEndpointName("n1", "k8s", name, "eth0")},
			Spec: api.WorkloadEndpointSpec{Node: "n1", Orchestrator: "k8s", Pod: name, Endpoint: "eth0", IPNetworks: []string{ip + "/32"}}}
	}
	e.create(wep("ok", got[0].String()), wep("stray", "10.15.0.250"), wep("outside", "192.0.2.7"))
	probs, err := e.c.Check(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, p := range probs {
		text = append(text, p.String())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{
		fmt.Sprintf(`leaked: %s is allocated to handle "w-1" (node=n1) but no WorkloadEndpoint has it`, got[1]),
		`leaked: `, // ghost's address
		`missing-node: block `, `is affine to node "ghost", which does not exist`,
		`missing-node: node "ghost", which does not exist, holds an affinity for block`,
		"not-allocated: WorkloadEndpoint default/n1-k8s-stray-eth0 has 10.15.0.250, which is not allocated",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems do not mention %q:\n%s", want, all)
		}
	}
	if len(probs) != 5 || strings.Contains(all, "192.0.2.7") || strings.Contains(all, got[0].String()+" ") {
		t.Errorf("want exactly 5 problems (none about the healthy endpoint or addresses outside pools):\n%s", all)
	}
}

// TestRacingHosts runs many hosts at once against one small pool: the
// blocks are contended, yet every address is handed out once and every
// block has one owner.
func TestRacingHosts(t *testing.T) {
	e := newEnv(t, ippool("p", "10.16.0.0/24", 28)) // 16 blocks of 16
	const hosts, each = 6, 30
	var mu sync.Mutex
	var all []netip.Addr
	byHost := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for h := range hosts {
		wg.Go(func() {
			name := fmt.Sprint("host", h)
			got, err := e.assign(name, name, each)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			mu.Lock()
			defer mu.Unlock()
			all = append(all, got...)
			for _, a := range got {
				byHost[a] = name
			}
		})
	}
	wg.Wait()
	if len(all) != hosts*each {
		t.Fatalf("got %d addresses, want %d", len(all), hosts*each)
	}
	distinctIn(t, all, "10.16.0.0/24")
	blocks := e.blocks()
	affs := e.affinities()
	for cidr, n := range blocks {
		if affs[n+" "+cidr] != api.AffinityConfirmed {
			t.Errorf("block %s affine to %q without a confirmed affinity", cidr, n)
		}
	}
	for a, h := range byHost {
		if n := blocks[netip.PrefixFrom(a, 28).Masked().String()]; n != h {
			t.Errorf("%s of %s is in a block of %q (no borrowing was needed)", a, h, n)
		}
	}
	if len(affs) != len(blocks) {
		t.Errorf("%d affinities for %d blocks: %v", len(affs), len(blocks), affs)
	}
}

// TestHandlesCountExactly: a handle counts, per block, exactly the
// addresses it holds there, also when the handle was counted up ahead of
// reading the block (the block the client used last, now full; a
// request for more than a block holds; a request that fails).
func TestHandlesCountExactly(t *testing.T) {
	e := newEnv(t, ippool("p", "10.13.0.0/24", 28), ippool("q", "10.14.0.0/24", 28)) // 16 blocks of 16 each
	e.mustAssign("n", "a", 16)                                                       // the hint now points at a full block
	cases := []struct {
		handle string
		n      int
		fails  bool
		pool   string
	}{
		{"b", 1, false, ""},  // hinted block full: a new block
		{"f", 1, false, "q"}, // the hinted block is not in the pool asked for
		{"c", 20, false, ""}, // more than one block holds
		{"d", 600, true, ""}, // more than the pools hold: nothing kept
		{"e", 2, false, ""},  // after a failure the hint still works
		{"g", 1, true, "r"},  // a pool that does not exist
	}
	for _, tc := range cases {
		args := ipam.AutoAssignArgs{Num4: tc.n, Handle: tc.handle, Node: "n"}
		if tc.pool != "" {
			args.IPv4Pools = []string{tc.pool}
		}
		res, err := e.c.AutoAssign(e.ctx, args)
		if (err != nil) != tc.fails {
			t.Fatalf("handle %s: error %v, want failure %v", tc.handle, err, tc.fails)
		}
		want := map[string]int{}
		if err == nil {
			for _, a := range res.IPv4 {
				want[netip.PrefixFrom(a, 28).Masked().String()]++
			}
		}
		r, err := e.ds.Get(e.ctx, api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(tc.handle)})
		switch {
		case len(want) == 0:
			if !errors.Is(err, datastore.ErrNotFound) {
				t.Errorf("handle %s after a failed request: %v, want none", tc.handle, err)
			}
		case err != nil:
			t.Errorf("handle %s: %v", tc.handle, err)
		default:
			if got := r.(*api.IPAMHandle).Spec.Block; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("handle %s counts %v, holds %v", tc.handle, got, want)
			}
		}
	}
	probs, err := e.c.Check(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.Kind == ipam.ProblemMissingHandle {
			t.Errorf("check: %s", p)
		}
	}
}

// lockCheckingStore fails the test when a block or handle is written
// while the caller's lock is not held.
type lockCheckingStore struct {
	datastore.Interface
	t    *testing.T
	held *bool
}

func (s lockCheckingStore) check(r api.Resource) {
	if k := r.GetTypeMeta().Kind; (k == "IPAMBlock" || k == "IPAMHandle") && !*s.held {
		s.t.Errorf("%s written without the lock", api.KeyOf(r))
	}
}

func (s lockCheckingStore) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	s.check(r)
	return s.Interface.Create(ctx, r)
}

func (s lockCheckingStore) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	s.check(r)
	return s.Interface.Update(ctx, r)
}

// TestAutoAssignLock: with AutoAssignArgs.Lock, every block and handle
// write happens while the lock is held, the lock is taken once per
// request and released before AutoAssign returns, also when it fails.
func TestAutoAssignLock(t *testing.T) {
	mem := datastore.NewMemory(nil)
	t.Cleanup(func() { mem.Close() })
	held := false
	ds := lockCheckingStore{Interface: mem, t: t, held: &held}
	if _, err := mem.Create(context.Background(), ippool("p", "10.15.0.0/27", 28)); err != nil {
		t.Fatal(err)
	}
	c := ipam.New(ds, ipam.Config{})
	locks := 0
	lock := func() func() {
		if held {
			t.Error("lock taken twice")
		}
		held, locks = true, locks+1
		return func() { held = false }
	}
	for i, want := range []bool{true, true, true, false} { // 32 addresses: 3 requests of 10 fit, the 4th not
		_, err := c.AutoAssign(context.Background(), ipam.AutoAssignArgs{Num4: 10, Handle: fmt.Sprint("h", i), Node: "n", Lock: lock})
		if (err == nil) != want {
			t.Errorf("request %d: %v, want success %v", i, err, want)
		}
		if held {
			t.Errorf("request %d: lock still held after AutoAssign returned", i)
		}
		if locks != i+1 {
			t.Errorf("request %d: lock taken %d times in all, want %d", i, locks, i+1)
		}
	}
}

// TestReuseHandle: with ReuseHandle, a request for a handle that already
// holds an address of every family asked for gets those (a retried CNI
// ADD); otherwise it allocates.
func TestReuseHandle(t *testing.T) {
	e := newEnv(t, ippool("p4", "10.16.0.0/24", 26), ippool("p6", "fd00:16::/120", 122))
	first, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "h", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       ipam.AutoAssignArgs
		wantReused bool
		wantHeld   int // addresses the handle holds afterwards
	}{
		{"retried", ipam.AutoAssignArgs{Num4: 1, Handle: "h", Node: "n", ReuseHandle: true}, true, 1},
		{"retried with a lock", ipam.AutoAssignArgs{Num4: 1, Handle: "h", Node: "n", ReuseHandle: true,
			Lock: func() func() { return func() {} }}, true, 1},
		{"another family asked for", ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: "h", Node: "n", ReuseHandle: true}, false, 3},
		{"without ReuseHandle", ipam.AutoAssignArgs{Num4: 1, Handle: "h", Node: "n"}, false, 4},
		{"a new handle", ipam.AutoAssignArgs{Num4: 1, Handle: "k", Node: "n", ReuseHandle: true}, false, 4},
	}
	for _, tt := range tests {
		res, err := e.c.AutoAssign(e.ctx, tt.args)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Reused != tt.wantReused {
			t.Errorf("%s: reused %v, want %v", tt.name, res.Reused, tt.wantReused)
		}
		if tt.wantReused && (len(res.IPv4) != 1 || res.IPv4[0] != first.IPv4[0]) {
			t.Errorf("%s: got %v, want the first address %v", tt.name, res.IPv4, first.IPv4)
		}
		if held, _ := e.c.IPsByHandle(e.ctx, "h"); len(held) != tt.wantHeld {
			t.Errorf("%s: handle h holds %v, want %d addresses", tt.name, held, tt.wantHeld)
		}
	}
}

// TestSetHint: a fresh client told the block its node used last (as the
// CNI plugin tells it, with ReuseHandle and the host lock) allocates from
// that block when it is the node's, and from the node's own block
// otherwise; the handle counts exactly what it holds, every write happens
// under the lock, and a retry with the hint gets the same address.
func TestSetHint(t *testing.T) {
	e := newEnv(t, ippool("p", "10.17.0.0/24", 28))
	first, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "a", Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "b", Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	own, other := e.c.Hint("n1", 32), e.c.Hint("n2", 32)
	if !own.IsValid() || !own.Contains(first.IPv4[0]) || !other.IsValid() || other == own {
		t.Fatalf("hints after the first allocations: n1 %v, n2 %v", own, other)
	}
	held := false
	ds := lockCheckingStore{Interface: e.ds, t: t, held: &held}
	lock := func() func() {
		if held {
			t.Error("lock taken twice")
		}
		held = true
		return func() { held = false }
	}
	for _, try := range []struct {
		name    string
		tryLock func() (func(), bool)
	}{
		{"no TryLock", nil},
		{"lock free", func() (func(), bool) { return lock(), true }},
		{"lock busy", func() (func(), bool) { return nil, false }},
	} {
		t.Run(try.name, func(t *testing.T) {
			testSetHint(t, e, ds, &held, own, other, lock, try.tryLock, try.name)
		})
	}
}

func testSetHint(t *testing.T, e *env, ds datastore.Interface, held *bool, own, other netip.Prefix,
	lock func() func(), tryLock func() (func(), bool), prefix string) {
	tests := []struct {
		name string
		hint netip.Prefix
	}{
		{"the node's block", own},
		{"another node's block", other},
		{"a block nobody claimed", netip.MustParsePrefix("10.17.0.128/28")},
		{"outside every pool", netip.MustParsePrefix("192.168.7.0/28")},
		{"no hint", netip.Prefix{}},
	}
	for i, tt := range tests {
		c := ipam.New(ds, ipam.Config{})
		c.SetHint("n1", tt.hint)
		handle := fmt.Sprint(prefix, "-", i)
		args := ipam.AutoAssignArgs{Num4: 1, Handle: handle, Node: "n1", ReuseHandle: true, Lock: lock, TryLock: tryLock}
		res, err := c.AutoAssign(e.ctx, args)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(res.IPv4) != 1 || !own.Contains(res.IPv4[0]) || res.Reused {
			t.Errorf("%s: got %+v, want one new address of the node's block %s", tt.name, res, own)
		}
		if h := c.Hint("n1", 32); h != own {
			t.Errorf("%s: hint afterwards %v, want %s", tt.name, h, own)
		}
		r, err := e.ds.Get(e.ctx, api.Key{Kind: "IPAMHandle", Name: api.IPAMHandleName(handle)})
		if err != nil {
			t.Fatalf("%s: handle: %v", tt.name, err)
		}
		counted := 0
		for _, n := range r.(*api.IPAMHandle).Spec.Block {
			counted += n
		}
		if counted != 1 {
			t.Errorf("%s: handle counts %v, want 1 address", tt.name, r.(*api.IPAMHandle).Spec.Block)
		}
		// The retried ADD: a fresh client with the hint gets the same.
		c = ipam.New(ds, ipam.Config{})
		c.SetHint("n1", own)
		again, err := c.AutoAssign(e.ctx, args)
		if err != nil || !again.Reused || fmt.Sprint(again.IPv4) != fmt.Sprint(res.IPv4) {
			t.Errorf("%s: retry got %+v (err %v), want %v reused", tt.name, again, err, res.IPv4)
		}
		if *held {
			t.Errorf("%s: lock still held", tt.name)
		}
	}
}
