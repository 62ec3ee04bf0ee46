package overlay

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// GuardTable is the nftables table (family inet) that protects the VXLAN
// port. It is a table of its own, apart from the dataplane's policy table,
// so that it never waits on a policy transaction and a policy flush never
// opens the port: a drop in any base chain is final in nftables.
const GuardTable = "serval-overlay"

// Guard is what the table enforces: VXLAN (UDP Port) is accepted on input
// only from the known hosts' addresses, and never from a workload
// interface (WorkloadPrefix*), in input or forward: a workload cannot
// inject packets by sending VXLAN to its own or another host. With IPIP,
// IPIP packets (IP protocol 4) from a workload interface are dropped the
// same way (Calico's allowIPIPPacketsFromWorkloads false).
type Guard struct {
	Port           int // 0: no VXLAN device
	KnownHosts     []netip.Addr
	WorkloadPrefix string
	IPIP           bool // tunl0 is in use
}

// GuardConn is the part of *nftables.Conn the guard uses.
type GuardConn interface {
	AddTable(t *nftables.Table) *nftables.Table
	DelTable(t *nftables.Table)
	AddChain(c *nftables.Chain) *nftables.Chain
	AddSet(s *nftables.Set, vals []nftables.SetElement) error
	AddRule(r *nftables.Rule) *nftables.Rule
	Flush() error
}

// ApplyGuard replaces the guard table in one transaction (add, delete and
// recreate: atomic, and fine whether or not the table existed). With Port
// 0 and no IPIP the table is removed.
func ApplyGuard(c GuardConn, g Guard) error {
	t := &nftables.Table{Name: GuardTable, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if g.Port == 0 && !g.IPIP {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("removing nftables table %s: %w", GuardTable, err)
		}
		return nil
	}
	c.AddTable(t)
	h4 := &nftables.Set{Table: t, Name: "hosts4", KeyType: nftables.TypeIPAddr}
	h6 := &nftables.Set{Table: t, Name: "hosts6", KeyType: nftables.TypeIP6Addr}
	var e4, e6 []nftables.SetElement
	for _, a := range g.KnownHosts {
		if a.Is4() {
			e4 = append(e4, nftables.SetElement{Key: a.AsSlice()})
		} else {
			e6 = append(e6, nftables.SetElement{Key: a.AsSlice()})
		}
	}
	if err := c.AddSet(h4, e4); err != nil {
		return fmt.Errorf("guard set hosts4: %w", err)
	}
	if err := c.AddSet(h6, e6); err != nil {
		return fmt.Errorf("guard set hosts6: %w", err)
	}
	prio := nftables.ChainPriority(*nftables.ChainPriorityFilter - 5)
	policy := nftables.ChainPolicyAccept
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: &prio, Policy: &policy})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: &prio, Policy: &policy})
	drop := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	fromWorkload := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(g.WorkloadPrefix)},
	}
	if g.IPIP && g.WorkloadPrefix != "" {
		ipip := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_IPIP}},
		}
		for _, ch := range []*nftables.Chain{in, fwd} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(ipip, fromWorkload, drop)})
		}
	}
	if g.Port != 0 {
		g.vxlanRules(c, t, in, fwd, h4, h6, fromWorkload, drop)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("programming nftables table %s (VXLAN port %d): %w", GuardTable, g.Port, err)
	}
	return nil
}

// vxlanRules drop VXLAN from workloads and from unknown hosts.
func (g Guard) vxlanRules(c GuardConn, t *nftables.Table, in, fwd *nftables.Chain, h4, h6 *nftables.Set, fromWorkload, drop []expr.Any) {
	port := binaryutil.BigEndian.PutUint16(uint16(g.Port))
	udpPort := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
	}
	if g.WorkloadPrefix != "" {
		for _, ch := range []*nftables.Chain{in, fwd} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(udpPort, fromWorkload, drop)})
		}
	}
	for _, f := range []struct {
		proto byte
		off   uint32
		n     uint32
		set   *nftables.Set
	}{{unix.NFPROTO_IPV4, 12, 4, h4}, {unix.NFPROTO_IPV6, 8, 16, h6}} {
		known := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.off, Len: f.n},
			&expr.Lookup{SourceRegister: 1, SetName: f.set.Name, SetID: f.set.ID, Invert: true},
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: cat(udpPort, known, drop)})
	}
}

func cat(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

// GuardOf is the guard d asks for: the port of its VXLAN devices (0:
// none) and whether it uses IPIP.
func GuardOf(d Desired, workloadPrefix string) Guard {
	g := Guard{KnownHosts: d.KnownHosts, WorkloadPrefix: workloadPrefix}
	for _, dv := range d.Devices {
		switch {
		case dv.IPIP:
			g.IPIP = true
		case g.Port == 0:
			g.Port = dv.Port
		}
	}
	return g
}
