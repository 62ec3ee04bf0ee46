package dataplane

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unique"

	"github.com/servalnet/serval/internal/hoststate"
)

// This file holds the dataplane's own model of the nftables table: chains of
// rules made of statements, sets and verdict maps. The renderer produces it
// from hoststate, the planner diffs two of them, the kernel backend turns it
// into netlink expressions and the fake backend keeps one as its "kernel".
// Every statement knows how to print itself in nft syntax, which is what the
// golden tests compare and what a reader of `nft list` recognises.

// TableName is the one nftables table Serval owns (family inet).
const TableName = "serval"

// Mark bits Serval uses in the packet mark. Policy chains cannot return a
// verdict to their caller's caller, so "allowed" and "passed" travel up as
// bits: a policy or profile chain sets MarkAccept (allow) or MarkPass (pass to
// the next tier) and returns; the endpoint chain tests them.
const (
	MarkAccept uint32 = 0x10000
	MarkPass   uint32 = 0x20000
	markOurs          = MarkAccept | MarkPass
)

// hook says where a base chain is attached.
type hook struct {
	Hook     string // prerouting, input, forward, output, postrouting
	Type     string // filter or nat
	Priority int32
}

// chain is one chain of the table. Base is nil for regular chains.
type chain struct {
	Name  string
	Base  *hook
	Rules []rule
}

// rule is a list of statements evaluated left to right, like an nft rule.
// Comment is the hoststate rule ID (or a short label), for humans.
type rule struct {
	Stmts   []stmt
	Comment string
}

// stmt is one match or action of a rule.
type stmt interface {
	text() string
}

// Families, for statements that exist per IP version.
const (
	v4 = 4
	v6 = 6
)

func famKW(fam int) string {
	if fam == v6 {
		return "ip6"
	}
	return "ip"
}

// --- matches ---

// mNfproto: meta nfproto ipv4|ipv6.
type mNfproto struct{ Fam int }

func (m mNfproto) text() string { return "meta nfproto ipv" + strconv.Itoa(m.Fam) }

// mEtherSrc: ether saddr [!=] MAC, for packets that arrived on an Ethernet
// interface (a workload's veth).
type mEtherSrc struct {
	MAC net.HardwareAddr
	Neg bool
}

func (m mEtherSrc) text() string { return "ether saddr " + neg(m.Neg) + m.MAC.String() }

// mL4proto: meta l4proto [!=] { p, ... }.
type mL4proto struct {
	Protos []uint8
	Neg    bool
}

func (m mL4proto) text() string {
	parts := make([]string, len(m.Protos))
	for i, p := range m.Protos {
		parts[i] = protoName(p)
	}
	return "meta l4proto " + neg(m.Neg) + braces(parts)
}

// mAddr: ip saddr [!=] { prefixes }.
type mAddr struct {
	Fam      int
	Dst      bool
	Prefixes []netip.Prefix
	Neg      bool
}

func (m mAddr) text() string {
	parts := make([]string, len(m.Prefixes))
	for i, p := range m.Prefixes {
		parts[i] = prefixText(p)
	}
	return famKW(m.Fam) + " " + sd(m.Dst) + "addr " + neg(m.Neg) + braces(parts)
}

// mSet: ip saddr [!=] @set.
type mSet struct {
	Fam  int
	Dst  bool
	Set  string
	Neg  bool
	Port bool // named-port set: addr . l4proto . port
}

func (m mSet) text() string {
	k := famKW(m.Fam) + " " + sd(m.Dst) + "addr"
	if m.Port {
		k += " . meta l4proto . th " + sd(m.Dst) + "port"
	}
	return k + " " + neg(m.Neg) + "@" + m.Set
}

// mPorts: th dport [!=] { ranges }.
type mPorts struct {
	Dst    bool
	Ranges []portRange
	Neg    bool
}

type portRange struct{ First, Last uint16 }

func (m mPorts) text() string {
	parts := make([]string, len(m.Ranges))
	for i, r := range m.Ranges {
		parts[i] = strconv.Itoa(int(r.First))
		if r.Last != r.First {
			parts[i] += "-" + strconv.Itoa(int(r.Last))
		}
	}
	return "th " + sd(m.Dst) + "port " + neg(m.Neg) + braces(parts)
}

// mICMP: icmp|icmpv6 type [!=] T [code [!=] C]. With Neg, the pair is
// excluded: a packet with type T and code C does not match (and with no
// code, any packet of type T).
type mICMP struct {
	Fam  int
	Type uint8
	Code *uint8
	Neg  bool
}

func (m mICMP) text() string {
	kw := "icmp"
	if m.Fam == v6 {
		kw = "icmpv6"
	}
	s := kw + " type " + neg(m.Neg && m.Code == nil) + strconv.Itoa(int(m.Type))
	if m.Code != nil {
		if m.Neg {
			return kw + " type . " + kw + " code != " + strconv.Itoa(int(m.Type)) + " . " + strconv.Itoa(int(*m.Code))
		}
		s += " " + kw + " code " + strconv.Itoa(int(*m.Code))
	}
	return s
}

// mIface: iifname|oifname [!=] "name" ("name*" for a prefix).
type mIface struct {
	Out    bool
	Name   string
	Prefix bool
	Neg    bool
}

func (m mIface) text() string {
	n := m.Name
	if m.Prefix {
		n += "*"
	}
	return ifKW(m.Out) + " " + neg(m.Neg) + strconv.Quote(n)
}

// mIfaceSet: iifname|oifname != { "a", "b" } (exact names).
type mIfaceSet struct {
	Out   bool
	Names []string
	Neg   bool
}

func (m mIfaceSet) text() string {
	parts := make([]string, len(m.Names))
	for i, n := range m.Names {
		parts[i] = strconv.Quote(n)
	}
	return ifKW(m.Out) + " " + neg(m.Neg) + braces(parts)
}

// mCtState: ct state [!=] { established, related }.
type mCtState struct {
	States []string // invalid, established, related, untracked
}

func (m mCtState) text() string { return "ct state " + braces(m.States) }

// mMark: meta mark & Mask == Value (or != with Neg).
type mMark struct {
	Mask, Value uint32
	Neg         bool
}

func (m mMark) text() string {
	return fmt.Sprintf("meta mark & 0x%x %s0x%x", m.Mask, map[bool]string{false: "== ", true: "!= "}[m.Neg], m.Value)
}

// --- actions ---

// sSetMark: meta mark set meta mark & ^Clear | Set.
type sSetMark struct{ Clear, Set uint32 }

func (s sSetMark) text() string {
	return fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", ^s.Clear, s.Set)
}

// sLog: log prefix "...".
type sLog struct{ Prefix string }

func (s sLog) text() string { return "log prefix " + strconv.Quote(s.Prefix) }

type sNotrack struct{}

func (sNotrack) text() string { return "notrack" }

type sMasq struct{}

func (sMasq) text() string { return "masquerade" }

// sVmap: iifname|oifname vmap @map.
type sVmap struct {
	Out bool
	Map string
}

func (s sVmap) text() string { return ifKW(s.Out) + " vmap @" + s.Map }

// verdict ends a rule: accept, drop, return, jump X, goto X.
type verdict struct {
	Kind  string
	Chain string
}

func (v verdict) text() string {
	if v.Chain != "" {
		return v.Kind + " " + v.Chain
	}
	return v.Kind
}

var (
	vAccept = verdict{Kind: "accept"}
	vDrop   = verdict{Kind: "drop"}
	vReturn = verdict{Kind: "return"}
)

func vJump(c string) verdict { return verdict{Kind: "jump", Chain: c} }

// --- text helpers ---

func neg(b bool) string {
	if b {
		return "!= "
	}
	return ""
}

func sd(dst bool) string {
	if dst {
		return "d"
	}
	return "s"
}

func ifKW(out bool) string {
	if out {
		return "oifname"
	}
	return "iifname"
}

func braces(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return strconv.Itoa(int(p))
}

func (r rule) text() string {
	parts := make([]string, 0, len(r.Stmts)+1)
	for _, s := range r.Stmts {
		parts = append(parts, s.text())
	}
	return strings.Join(parts, " ")
}

// hashRules gives each rule of a chain an id that covers the rule and every
// rule before it, as Felix does: comparing the id lists of two versions of
// a chain tells whether they are equal, and the ids go into the kernel
// rule's userdata so that a read-back can be compared without decoding
// expressions.
func hashRules(chainName string, base *hook, rules []rule) []string {
	h := sha256.New()
	h.Write([]byte(chainName))
	if base != nil {
		fmt.Fprintf(h, "|%s|%s|%d", base.Hook, base.Type, base.Priority)
	}
	prev := h.Sum(nil)
	out := make([]string, len(rules))
	for i, r := range rules {
		h.Reset()
		h.Write(prev)
		h.Write([]byte(r.text()))
		h.Write([]byte{0})
		h.Write([]byte(r.Comment))
		prev = h.Sum(nil)
		out[i] = hex.EncodeToString(prev[:8])
	}
	return out
}

// shortHash is the 10-hex-character name fragment derived from an ID:
// kernel object names stay short and free of characters nft would quote.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:5])
}

// --- sets ---

// setKind is the key type of a set or map.
type setKind int

const (
	kindAddr4     setKind = iota + 1 // ipv4_addr, interval
	kindAddr6                        // ipv6_addr, interval
	kindAddrPort4                    // ipv4_addr . inet_proto . inet_service
	kindAddrPort6                    // ipv6_addr . inet_proto . inet_service
	kindIfaceVmap                    // ifname : verdict
	kindRun4                         // ipv4_addr . inet_proto . inet_service, interval (compiled runs)
	kindRun6                         // ipv6_addr . inet_proto . inet_service, interval
)

func (k setKind) String() string {
	switch k {
	case kindAddr4:
		return "ipv4_addr; flags interval"
	case kindAddr6:
		return "ipv6_addr; flags interval"
	case kindAddrPort4:
		return "ipv4_addr . inet_proto . inet_service"
	case kindAddrPort6:
		return "ipv6_addr . inet_proto . inet_service"
	case kindIfaceVmap:
		return "ifname : verdict"
	case kindRun4:
		return "ipv4_addr . inet_proto . inet_service; flags interval"
	case kindRun6:
		return "ipv6_addr . inet_proto . inet_service; flags interval"
	}
	return "unknown"
}

// elem is one element of a set or map. It is comparable, so sets of
// elements are Go maps and diffs are map differences. Address sets use
// From..To (inclusive); named-port sets use From, Proto and Port; verdict
// maps use an interface and a chain (the jump target), held by one
// interned handle: a cold start keeps 200,000 elements in maps, twice (the
// wanted sets and the ops planned from them), and two strings in every
// element made each one 96 bytes where 64 do.
type elem struct {
	// The fields are ordered to pack: 17+17+1+1+2+2 bytes, then the
	// handle, 48 bytes in all.
	from, to addr
	Proto    uint8
	// Run elements (compiled runs) are boxes: addresses From..To, one
	// protocol, ports Port..PortTo.
	Run    bool
	Port   uint16
	PortTo uint16
	jump   unique.Handle[vmapEntry] // zero unless a verdict map element
}

// From is the element's (first) address.
func (e elem) From() netip.Addr { return e.from.ip() }

// To is the last address of an address range or run.
func (e elem) To() netip.Addr { return e.to.ip() }

// addr is an address packed into 17 bytes where netip.Addr takes 24 (its
// zone, which Serval never uses, is a pointer). Packed addresses order as
// netip.Addr.Compare does: invalid, then IPv4, then IPv6, then by bytes.
type addr struct {
	b   [16]byte
	fam uint8 // 0: invalid, 4 or 6
}

func pack(a netip.Addr) addr {
	switch {
	case a.Is4():
		var p addr
		b := a.As4()
		copy(p.b[:], b[:])
		p.fam = 4
		return p
	case a.Is6():
		return addr{b: a.As16(), fam: 6}
	}
	return addr{}
}

func (p addr) ip() netip.Addr {
	switch p.fam {
	case 4:
		return netip.AddrFrom4([4]byte(p.b[:4]))
	case 6:
		return netip.AddrFrom16(p.b)
	}
	return netip.Addr{}
}

// memberKey is an IP set member packed for a map key: 22 bytes where
// hoststate.IPSetMember takes 40. At 100,000 remote endpoints the sets
// hold hundreds of thousands.
type memberKey struct {
	a           addr
	bits, proto uint8
	port        uint16
}

func packMember(m hoststate.IPSetMember) memberKey {
	k := memberKey{proto: m.Protocol, port: m.Port}
	if m.Prefix.IsValid() {
		k.a, k.bits = pack(m.Prefix.Addr()), uint8(m.Prefix.Bits())
	}
	return k
}

func (k memberKey) member() hoststate.IPSetMember {
	m := hoststate.IPSetMember{Protocol: k.proto, Port: k.port}
	if a := k.a.ip(); a.IsValid() {
		m.Prefix = netip.PrefixFrom(a, int(k.bits))
	}
	return m
}

func (p addr) compare(q addr) int {
	return cmp.Or(cmp.Compare(p.fam, q.fam), bytes.Compare(p.b[:], q.b[:]))
}

// vmapEntry is a verdict map element's key and target.
type vmapEntry struct{ iface, chain string }

// vmapElem is the verdict map element that sends iface to chain.
func vmapElem(iface, chain string) elem {
	return elem{jump: unique.Make(vmapEntry{iface, chain})}
}

// isVmap reports whether e is a verdict map element.
func (e elem) isVmap() bool { return e.jump != unique.Handle[vmapEntry]{} }

// iface is a verdict map element's interface name ("" for other elements).
func (e elem) iface() string {
	if !e.isVmap() {
		return ""
	}
	return e.jump.Value().iface
}

// chain is a verdict map element's target chain ("" for other elements).
func (e elem) chain() string {
	if !e.isVmap() {
		return ""
	}
	return e.jump.Value().chain
}

func (e elem) text() string {
	switch {
	case e.isVmap():
		return strconv.Quote(e.iface()) + " : jump " + e.chain()
	case e.Run:
		a := e.From().String() + "-" + e.To().String()
		if p, ok := rangeToPrefix(e.From(), e.To()); ok {
			a = prefixText(p)
		}
		ports := strconv.Itoa(int(e.Port))
		if e.PortTo != e.Port {
			ports += "-" + strconv.Itoa(int(e.PortTo))
		}
		return a + " . " + protoName(e.Proto) + " . " + ports
	case e.Port != 0 || e.Proto != 0:
		return fmt.Sprintf("%s . %s . %d", e.From(), protoName(e.Proto), e.Port)
	}
	if p, ok := rangeToPrefix(e.From(), e.To()); ok {
		return prefixText(p)
	}
	return e.From().String() + "-" + e.To().String()
}

// set is a named set or verdict map. Comment carries the hoststate ID it
// was derived from, so `nft list` readers can trace a hashed name back.
type set struct {
	Name    string
	Kind    setKind
	Comment string
	Elems   map[elem]struct{}
	// shared: Elems is also the Dataplane's snapshot of the kernel's set
	// (they are equal); it is copied before it is changed in place.
	shared bool
}

func (s *set) sortedElems() []elem {
	out := make([]elem, 0, len(s.Elems))
	for e := range s.Elems {
		out = append(out, e)
	}
	sortElems(out)
	return out
}

func sortElems(es []elem) {
	// slices.SortFunc, not sort.Slice: elements are 48 bytes, and a cold
	// start sorts 200,000 of them; swapping through reflection was most
	// of the planner's time.
	slices.SortFunc(es, func(a, b elem) int {
		return cmp.Or(
			strings.Compare(a.iface(), b.iface()),
			a.from.compare(b.from),
			a.to.compare(b.to),
			cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.Port, b.Port),
			cmp.Compare(a.PortTo, b.PortTo),
			strings.Compare(a.chain(), b.chain()))
	})
}

// rangeToPrefix reports whether [from, to] is exactly one prefix.
func rangeToPrefix(from, to netip.Addr) (netip.Prefix, bool) {
	if !from.IsValid() || from.BitLen() != to.BitLen() {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= from.BitLen(); bits++ {
		p := netip.PrefixFrom(from, bits)
		if p.Masked().Addr() != from {
			continue
		}
		if lastAddr(p) == to {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// lastAddr is the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// intervalsOf turns prefixes into disjoint inclusive ranges. The kernel
// rejects overlapping intervals in one set, and a network set may well list
// 10.0.0.0/8 and 10.1.0.0/16; so members are merged where they overlap (but
// not where they merely touch, so that adding one endpoint address changes
// one element, not a run of them).
func intervalsOf(ps []netip.Prefix) []elem {
	rs := make([]elem, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		rs = append(rs, elem{from: pack(p.Addr()), to: pack(lastAddr(p))})
	}
	return mergeInPlace(rs)
}

// dump prints a whole table model in nft-like syntax: sets and maps first,
// then chains, each sorted by name. It is what golden files hold.
func dumpModel(sets map[string]*set, chains map[string]*chain) string {
	var b strings.Builder
	b.WriteString("table inet " + TableName + " {\n")
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := sets[n]
		kw := "set"
		if s.Kind == kindIfaceVmap {
			kw = "map"
		}
		fmt.Fprintf(&b, "\t%s %s { # %s\n\t\ttype %s\n", kw, s.Name, s.Comment, s.Kind)
		es := s.sortedElems()
		if len(es) > 0 {
			parts := make([]string, len(es))
			for i, e := range es {
				parts[i] = e.text()
			}
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(parts, ", "))
		}
		b.WriteString("\t}\n")
	}
	names = names[:0]
	for n := range chains {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := chains[n]
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Base != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %d; policy accept;\n", c.Base.Type, c.Base.Hook, c.Base.Priority)
		}
		for _, r := range c.Rules {
			b.WriteString("\t\t" + r.text())
			if r.Comment != "" {
				b.WriteString(" # " + r.Comment)
			}
			b.WriteString("\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// mICMPTypes: icmpv6 type { t, ... } (or icmp for v4).
type mICMPTypes struct {
	Fam   int
	Types []uint8
}

func (m mICMPTypes) text() string {
	kw := "icmp"
	if m.Fam == v6 {
		kw = "icmpv6"
	}
	parts := make([]string, len(m.Types))
	for i, t := range m.Types {
		parts[i] = strconv.Itoa(int(t))
	}
	return kw + " type " + braces(parts)
}
