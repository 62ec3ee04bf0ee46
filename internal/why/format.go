package why

import (
	"fmt"
	"io"
	"strings"

	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/verdict"
)

// ProtoName names an IP protocol number as the CLI takes it.
func ProtoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return fmt.Sprint(p)
}

// PacketText describes the packet: "192.168.1.2 -> 192.168.1.1 tcp port 80".
func PacketText(p verdict.Packet) string {
	s := fmt.Sprintf("%s -> %s %s", p.Src, p.Dst, ProtoName(p.Protocol))
	if hasPortsProto(p.Protocol) {
		s += fmt.Sprintf(" port %d (from port %d)", p.DstPort, p.SrcPort)
	}
	if p.Protocol == 1 || p.Protocol == 58 {
		s += fmt.Sprintf(" type %d code %d", p.ICMPType, p.ICMPCode)
	}
	return s
}

func word(a hoststate.Action) string {
	if a == hoststate.Allow {
		return "ALLOWED"
	}
	return "DENIED"
}

// Print writes r for people.
func Print(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%s: %s\n", PacketText(r.Packet), word(r.Verdict))
	fmt.Fprintf(w, "  source:      %s\n", r.Src)
	fmt.Fprintf(w, "  destination: %s\n", r.Dst)
	side := func(name string, e Endpoint, t *verdict.Trace) {
		if t == nil {
			fmt.Fprintf(w, "\n%s: %s is not a Serval endpoint: no policy of Serval applies there\n", name, e.Addrs[0])
			return
		}
		fmt.Fprintf(w, "\n%s at %s (%s): %s\n", name, e.Node, t.Endpoint, word(t.Verdict))
		PrintSteps(w, "  ", t.Steps)
	}
	side("egress", r.Src, r.Egress)
	side("ingress", r.Dst, r.Ingress)
	fmt.Fprintf(w, "\nverdict: %s\n", word(r.Verdict))
}

// PrintSteps writes the steps of a trace, one a line.
func PrintSteps(w io.Writer, indent string, steps []verdict.Step) {
	for _, s := range steps {
		fmt.Fprintln(w, indent+StepText(s))
	}
}

// StepText is one step as a line.
func StepText(s verdict.Step) string {
	who := func() string {
		if s.Profile != "" {
			return "profile " + s.Profile
		}
		return fmt.Sprintf("%s %s", s.PolicyKind, s.Policy)
	}
	in := "  "
	switch s.Kind {
	case verdict.StepTier:
		return fmt.Sprintf("tier %s (ends in %s)", s.Tier, s.Action)
	case verdict.StepPolicy:
		return in + who()
	case verdict.StepProfile:
		return "profile " + s.Profile
	case verdict.StepRule:
		if s.Profile != "" {
			in = "  "
		} else {
			in += "  "
		}
		t := fmt.Sprintf("%srule %d matched: %s", in, s.Rule, s.Action)
		switch s.Action {
		case hoststate.Pass:
			t += " (skip the rest of the tier)"
		case hoststate.Log:
			t += " (and go on)"
		}
		return t
	case verdict.StepNoMatch:
		if s.Profile != "" {
			return "  no rule matched"
		}
		return in + "  no rule matched"
	case verdict.StepTierEnd:
		return fmt.Sprintf("  end of tier %s: %s (%s)", s.Tier, s.Action, s.Note)
	case verdict.StepMissing:
		return fmt.Sprintf("  %s: %s", who(), s.Note)
	case verdict.StepNoPolicy:
		return fmt.Sprintf("%s: Deny", s.Note)
	case verdict.StepBase:
		return fmt.Sprintf("%s: %s", s.Note, s.Action)
	}
	return strings.TrimSpace(fmt.Sprintf("%s %+v", s.Kind, s))
}
