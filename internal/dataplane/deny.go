package dataplane

import (
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Policy's deny action (FelixConfiguration nftablesFilterDenyAction, or
// its older name iptablesFilterDenyAction): Drop, the default, or Reject,
// which answers the sender with an ICMP (ICMPv6) port unreachable instead
// of leaving it to time out. It applies where policy denies: Deny rules,
// the end of a tier, "no policy or profile allowed"; not to anti-spoofing,
// conntrack's invalid packets or unknown workload interfaces, nor in the
// chains of preDNAT and doNotTrack policy, which run at prerouting before
// routing, where the kernel does not reject.

// sReject: reject with icmpx port-unreachable.
type sReject struct{}

func (sReject) text() string { return "reject with icmpx port-unreachable" }

func (sReject) kernel(*builder) ([]expr.Any, error) {
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}, nil
}

// applyDenyAction turns the policy drops of rules into rejects when the
// configuration says Reject and the chain may reject (ok).
func (d *Dataplane) applyDenyAction(rules []rule, ok bool) []rule {
	if d.cfg.DenyAction != "Reject" || !ok {
		return rules
	}
	for i, r := range rules {
		if strings.HasPrefix(r.Comment, "anti-spoof") {
			continue
		}
		for j, s := range r.Stmts {
			if v, isV := s.(verdict); isV && v == vDrop {
				st := make([]stmt, len(r.Stmts))
				copy(st, r.Stmts)
				st[j] = sReject{}
				rules[i].Stmts = st
			}
		}
	}
	return rules
}

// mayReject reports whether the chain of a host endpoint's map runs at a
// hook where reject works.
func mayReject(mapName string) bool {
	return mapName != mapHepPreDNAT && mapName != mapHepRawIn && mapName != mapHepRawOut
}
