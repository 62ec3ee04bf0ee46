package dataplane

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/servalnet/serval/internal/hoststate"
)

// baseInputs is what the base chains depend on.
type baseInputs struct {
	cfg hoststate.Config
	// hepIfaces: interfaces with a host endpoint of their own, which a
	// wildcard ("*") host endpoint does not cover.
	hepIfaces []string
	// wildcard: for each host endpoint map, the chain of the "*" host
	// endpoint ("" when there is none).
	wildcard map[string]string
	// used: the host endpoint maps that dispatch to at least one chain
	// (an interface's entry or a wildcard).
	used map[string]bool
	// fips: the local workloads' floating IPs (floatingip.go).
	fips []hoststate.IPNAT
}

func prefixesOf(cfg hoststate.Config) []string {
	if len(cfg.InterfacePrefixes) == 0 {
		return []string{"cali"}
	}
	return cfg.InterfacePrefixes
}

// renderBase renders the base chains: the hooks, conntrack, dispatch to the
// endpoint chains by verdict map, the workload-to-host action, failsafe
// ports and natOutgoing.
func renderBase(in baseInputs) []*chain {
	cfg := in.cfg
	prefixes := prefixesOf(cfg)
	ctFirst := []rule{
		{Stmts: []stmt{mCtState{States: []string{"established", "related"}}, vAccept}},
		{Stmts: []stmt{mCtState{States: []string{"invalid"}}, vDrop}},
	}
	// Packets a doNotTrack policy allowed in the raw chains carry
	// MarkAccept and no conntrack entry; they are accepted here, after
	// the conntrack rules (a packet is either tracked or untracked, so
	// the order only decides what an established packet walks: one rule).
	untracked := rule{Stmts: []stmt{mCtState{States: []string{"untracked"}}, mMark{Mask: MarkAccept, Value: MarkAccept}, vAccept}}
	perPrefix := func(out bool, tail ...stmt) []rule {
		var rs []rule
		for _, p := range prefixes {
			rs = append(rs, rule{Stmts: append([]stmt{mIface{Out: out, Name: p, Prefix: true}}, tail...)})
		}
		return rs
	}
	// unknown drops traffic of a workload interface that has no endpoint
	// chain (the map had no entry, so MarkAccept is still clear), like
	// Calico's catch-all drop for unknown workload interfaces.
	unknown := func(out bool) []rule {
		return perPrefix(out, mMark{Mask: MarkAccept, Value: 0}, vDrop)
	}
	hepDispatch := func(mapName string, out bool) []rule {
		rs := []rule{clearMarks(), {Stmts: []stmt{sVmap{Out: out, Map: mapName}}}}
		if c := in.wildcard[mapName]; c != "" {
			excl := append([]string{"lo"}, in.hepIfaces...)
			sort.Strings(excl)
			st := []stmt{mIfaceSet{Out: out, Names: slices.Compact(excl), Neg: true}}
			for _, p := range prefixes {
				st = append(st, mIface{Out: out, Name: p, Prefix: true, Neg: true})
			}
			rs = append(rs, rule{Stmts: append(st, vJump(c)), Comment: "host endpoint *"})
		}
		return rs
	}
	ndTypes := mICMPTypes{Fam: v6, Types: icmpv6NDTypes}
	ndProto := mL4proto{Protos: []uint8{58}}

	fwd := &chain{Name: chainForward, Base: &hook{Hook: "forward", Type: "filter", Priority: 0}}
	fwd.Rules = append(fwd.Rules, ctFirst...)
	fwd.Rules = append(fwd.Rules, untracked)
	fwd.Rules = append(fwd.Rules, clearMarks(), rule{Stmts: []stmt{sVmap{Map: mapWlFrom}}})
	fwd.Rules = append(fwd.Rules, unknown(false)...)
	fwd.Rules = append(fwd.Rules, clearMarks(), rule{Stmts: []stmt{sVmap{Out: true, Map: mapWlTo}}})
	fwd.Rules = append(fwd.Rules, unknown(true)...)
	fwd.Rules = append(fwd.Rules, hepDispatch(mapHepFwdIn, false)...)
	fwd.Rules = append(fwd.Rules, hepDispatch(mapHepFwdOut, true)...)

	inp := &chain{Name: chainInput, Base: &hook{Hook: "input", Type: "filter", Priority: 0}}
	inp.Rules = append(inp.Rules, ctFirst...)
	inp.Rules = append(inp.Rules, untracked)
	inp.Rules = append(inp.Rules, clearMarks())
	inp.Rules = append(inp.Rules, perPrefix(false, ndProto, ndTypes, vAccept)...)
	inp.Rules = append(inp.Rules, rule{Stmts: []stmt{sVmap{Map: mapWlFrom}}})
	inp.Rules = append(inp.Rules, unknown(false)...)
	switch cfg.DefaultEndpointToHostAction {
	case "Accept":
		inp.Rules = append(inp.Rules, perPrefix(false, vAccept)...)
	case "Return":
		// Go on to the host endpoint policy below.
	default:
		inp.Rules = append(inp.Rules, perPrefix(false, vDrop)...)
	}
	inp.Rules = append(inp.Rules, failsafeRules(cfg.FailsafeInboundHostPorts, false)...)
	inp.Rules = append(inp.Rules, hepDispatch(mapHepIn, false)...)

	outp := &chain{Name: chainOutput, Base: &hook{Hook: "output", Type: "filter", Priority: 0}}
	outp.Rules = append(outp.Rules, ctFirst...)
	outp.Rules = append(outp.Rules, untracked)
	outp.Rules = append(outp.Rules, clearMarks())
	outp.Rules = append(outp.Rules, perPrefix(true, ndProto, ndTypes, vAccept)...)
	outp.Rules = append(outp.Rules, rule{Stmts: []stmt{sVmap{Out: true, Map: mapWlTo}}})
	// Host to a workload: the workload's ingress policy decided; host
	// endpoint egress policy is for traffic leaving the host.
	outp.Rules = append(outp.Rules, perPrefix(true, mMark{Mask: MarkAccept, Value: MarkAccept}, vAccept)...)
	outp.Rules = append(outp.Rules, perPrefix(true, vDrop)...)
	outp.Rules = append(outp.Rules, failsafeRules(cfg.FailsafeOutboundHostPorts, true)...)
	outp.Rules = append(outp.Rules, hepDispatch(mapHepOut, true)...)

	// The preDNAT and raw (doNotTrack) chains exist for host endpoint
	// policy of those kinds only. Every packet the host forwards crosses
	// them, established ones too in raw (it runs before conntrack), so
	// they stay empty while no host endpoint has such policy: the failsafe
	// rules in them only guard against that policy.
	pre := &chain{Name: chainPrerouting, Base: &hook{Hook: "prerouting", Type: "filter", Priority: -150}}
	if in.used[mapHepPreDNAT] {
		pre.Rules = append(pre.Rules, ctFirst[0])
		pre.Rules = append(pre.Rules, failsafeRules(cfg.FailsafeInboundHostPorts, false)...)
		pre.Rules = append(pre.Rules, hepDispatch(mapHepPreDNAT, false)...)
	}
	raw := func(name, hookName, mapName string, failsafe []hoststate.ProtoPort, out bool) *chain {
		c := &chain{Name: name, Base: &hook{Hook: hookName, Type: "filter", Priority: -300}}
		if in.used[mapName] {
			c.Rules = append(c.Rules, failsafeRules(failsafe, out)...)
			c.Rules = append(c.Rules, hepDispatch(mapName, out)...)
			c.Rules = append(c.Rules, rule{Stmts: []stmt{mMark{Mask: MarkAccept, Value: MarkAccept}, sNotrack{}, vAccept}})
		}
		return c
	}
	rawPre := raw(chainRawPre, "prerouting", mapHepRawIn, cfg.FailsafeInboundHostPorts, false)
	rawOut := raw(chainRawOut, "output", mapHepRawOut, cfg.FailsafeOutboundHostPorts, true)

	natPre, natOut, hairpin := renderFloatingIPs(in.fips)
	nat := &chain{Name: chainNATPost, Base: &hook{Hook: "postrouting", Type: "nat", Priority: 100}, Rules: hairpin}
	for _, f := range []struct {
		fam        int
		nat, pools string
	}{{v4, setNATPools4, setPools4}, {v6, setNATPools6, setPools6}} {
		// natOutgoingAddress (IPv4 only, as in Calico) replaces the
		// outgoing interface's address.
		var to stmt = sMasq{}
		if a := cfg.NATOutgoingAddress; f.fam == v4 && a.IsValid() && a.Is4() {
			to = sNAT{Addr: a}
		}
		nat.Rules = append(nat.Rules, rule{Stmts: []stmt{
			mNfproto{Fam: f.fam},
			mSet{Fam: f.fam, Set: f.nat},
			mSet{Fam: f.fam, Dst: true, Set: f.pools, Neg: true},
			to,
		}, Comment: "natOutgoing"})
	}
	return []*chain{fwd, inp, outp, pre, rawPre, rawOut, nat, natPre, natOut}
}

// renderPools renders the pool sets natOutgoing uses: every pool (what is
// "inside") and the pools whose traffic is masqueraded leaving them.
func renderPools(pools map[string]hoststate.IPPool) []*set {
	var all, natp []netip.Prefix
	for _, p := range pools {
		if !p.CIDR.IsValid() {
			continue
		}
		all = append(all, p.CIDR)
		if p.NATOutgoing {
			natp = append(natp, p.CIDR)
		}
	}
	mk := func(name string, kind setKind, fam int, ps []netip.Prefix, comment string) *set {
		s := &set{Name: name, Kind: kind, Comment: comment, Elems: map[elem]struct{}{}}
		for _, e := range intervalsOf(filterFam(ps, fam)) {
			s.Elems[e] = struct{}{}
		}
		return s
	}
	return []*set{
		mk(setPools4, kindAddr4, v4, all, "all IP pools"),
		mk(setPools6, kindAddr6, v6, all, "all IP pools"),
		mk(setNATPools4, kindAddr4, v4, natp, "natOutgoing IP pools"),
		mk(setNATPools6, kindAddr6, v6, natp, "natOutgoing IP pools"),
	}
}
