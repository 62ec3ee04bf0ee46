package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/servalnet/serval/internal/ipam"
)

func TestState(t *testing.T) {
	e := newEnv(t, ippool("p4", "10.15.0.0/24", 28), ippool("p6", "fd00:15::/120", 124))
	res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: "net.c1", Node: "n1",
		Attrs: map[string]string{ipam.AttrNode: "n1", ipam.AttrWorkload: "w1"}})
	if err != nil {
		t.Fatal(err)
	}
	e.mustAssign("n2", "x", 1)
	st, err := e.c.State(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.AffinityNodes, []string{"n1", "n2"}) {
		t.Errorf("AffinityNodes = %v, want [n1 n2]", st.AffinityNodes)
	}
	if len(st.Blocks) != 3 {
		t.Errorf("Blocks = %v, want 3 (n1 v4, n1 v6, n2 v4)", st.Blocks)
	}
	got := map[netip.Addr]ipam.Allocation{}
	for _, a := range st.Allocations {
		got[a.IP] = a
	}
	if len(got) != 3 {
		t.Fatalf("Allocations = %v, want 3", st.Allocations)
	}
	for _, ip := range []netip.Addr{res.IPv4[0], res.IPv6[0]} {
		a, ok := got[ip]
		if !ok || a.Handle != "net.c1" || a.BlockNode != "n1" || a.Attrs[ipam.AttrWorkload] != "w1" || !a.Allocated {
			t.Errorf("allocation of %s = %+v, want handle net.c1 on n1 with workload w1", ip, a)
		}
	}
}

func TestReleaseEmptyBlock(t *testing.T) {
	e := newEnv(t, ippool("p", "10.16.0.0/24", 28), node("n1", nil))
	held := e.mustAssign("n1", "a", 17) // blocks: 16 + 1
	full := netip.PrefixFrom(held[0], 28).Masked()
	second := netip.PrefixFrom(held[16], 28).Masked()
	tests := []struct {
		name  string
		cidr  netip.Prefix
		node  string
		want  bool
		setup func()
	}{
		{name: "block in use", cidr: full, node: "n1"},
		{name: "another node's block", cidr: second, node: "n2"},
		{name: "no such block", cidr: netip.MustParsePrefix("10.16.0.240/28"), node: "n1"},
		{name: "empty block", cidr: second, node: "n1", want: true, setup: func() {
			if err := e.c.ReleaseByHandle(e.ctx, "a-16"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "released already", cidr: second, node: "n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			got, err := e.c.ReleaseEmptyBlock(e.ctx, tt.cidr, tt.node)
			if err != nil || got != tt.want {
				t.Fatalf("ReleaseEmptyBlock(%s, %s) = %v, %v; want %v", tt.cidr, tt.node, got, err, tt.want)
			}
		})
	}
	if _, ok := e.blocks()[second.String()]; ok {
		t.Errorf("released block %s still exists", second)
	}
	if _, ok := e.affinities()["n1 "+second.String()]; ok {
		t.Errorf("affinity of released block %s still exists", second)
	}
	if st := e.affinities()["n1 "+full.String()]; st != "confirmed" {
		t.Errorf("affinity of the block in use is %q, want confirmed", st)
	}
	if _, err := e.c.ReleaseEmptyBlock(e.ctx, netip.MustParsePrefix("10.16.0.1/28"), "n1"); err == nil {
		t.Error("an unmasked CIDR was accepted")
	}
}

// TestReleaseEmptyBlockRacesAllocation gives blocks back while the node
// allocates and releases: no address is ever lost (every handle keeps
// its address, Check stays clean of handle problems).
func TestReleaseEmptyBlockRacesAllocation(t *testing.T) {
	e := newEnv(t, ippool("p", "10.17.0.0/22", 29), node("n1", nil))
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var gc, wg sync.WaitGroup
	gc.Go(func() {
		for ctx.Err() == nil {
			st, err := e.c.State(ctx)
			if err != nil {
				continue
			}
			for _, b := range st.Blocks {
				if b.InUse == 0 && b.Node == "n1" {
					if _, err := e.c.ReleaseEmptyBlock(ctx, b.CIDR, "n1"); err != nil && ctx.Err() == nil {
						t.Errorf("ReleaseEmptyBlock: %v", err)
					}
				}
			}
		}
	})
	for w := range 4 {
		wg.Go(func() {
			for i := range 40 {
				h := fmt.Sprintf("w%d-%d", w, i)
				res, err := e.c.AutoAssign(e.ctx, ipam.AutoAssignArgs{Num4: 1, Handle: h, Node: "n1"})
				if err != nil {
					t.Errorf("AutoAssign %s: %v", h, err)
					return
				}
				ips, err := e.c.IPsByHandle(e.ctx, h)
				if err != nil || !slices.Equal(ips, res.IPv4) {
					t.Errorf("handle %s holds %v (%v), want %v", h, ips, err, res.IPv4)
				}
				if i%2 == 0 {
					if err := e.c.ReleaseByHandle(e.ctx, h); err != nil {
						t.Errorf("ReleaseByHandle %s: %v", h, err)
					}
				}
			}
		})
	}
	wg.Wait()
	cancel()
	gc.Wait()
	probs, err := e.c.Check(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.Kind != ipam.ProblemLeaked { // no endpoints in this test
			t.Errorf("check: %s", p)
		}
	}
	for w := range 4 {
		for i := 1; i < 40; i += 2 {
			h := fmt.Sprintf("w%d-%d", w, i)
			if ips, err := e.c.IPsByHandle(e.ctx, h); err != nil || len(ips) != 1 {
				t.Errorf("handle %s holds %v (%v), want one address", h, ips, err)
			}
		}
	}
}
