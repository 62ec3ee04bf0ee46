package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/why"
)

func newWhyCommand(g *globalOptions) *cobra.Command {
	var proto, output string
	var port, srcPort uint16
	var family int
	var staged bool
	cmd := &cobra.Command{
		Use:   "why SRC DST",
		Short: "Explain whether SRC can reach DST, policy by policy and rule by rule",
		Long: `Explain the verdict Serval's policy gives a connection from SRC to DST: egress at
SRC's host, then ingress at DST's host. Each side lists the tiers in order, each policy
that selects the endpoint, the rule that matched (or that none did and the tier's
default action), Pass jumps, the profiles, and the final allow or deny.

SRC and DST are workload endpoints (namespace/name, name, or workload name), host
endpoints (name), or addresses (an endpoint's address names the endpoint; another
address has no policy of Serval's own). The answer is computed from the datastore with
the calculation code the agents run; connection tracking is not modelled: the packet is
the first of its connection.

With --staged, the trace the staged policies would give once promoted is shown too.

Exit status: 0 allowed, 1 denied, 2 error.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fail := func(err error) error { return &ExitError{Code: 2, Err: err} }
			p, err := parseProto(proto)
			if err != nil {
				return fail(err)
			}
			if output != "" && output != "json" {
				return fail(fmt.Errorf("unknown output format %q: use json, or nothing for text", output))
			}
			if family != 0 && family != 4 && family != 6 {
				return fail(fmt.Errorf("--family must be 4 or 6, not %d", family))
			}
			if (p == 6 || p == 17 || p == 132 || p == 136) && port == 0 {
				return fail(fmt.Errorf("--port is required for %s", proto))
			}
			ds, err := g.openDatastore(cmd.Context())
			if err != nil {
				return fail(err)
			}
			defer ds.Close()
			snap, err := why.Load(cmd.Context(), ds)
			if err != nil {
				return fail(err)
			}
			q := why.Query{Src: args[0], Dst: args[1], Protocol: p, SrcPort: srcPort, DstPort: port, Family: family}
			res, err := snap.Explain(q)
			if err != nil {
				return fail(err)
			}
			final := res.Verdict
			var stRes *why.Result
			if staged {
				stSnap, err := snap.WithStaged()
				if err != nil {
					return fail(err)
				}
				if stRes, err = stSnap.Explain(q); err != nil {
					return fail(err)
				}
			}
			switch {
			case output == "json" && staged:
				err = writeStructured(g.streams.Out, "json", map[string]any{"enforced": res, "staged": stRes})
			case output == "json":
				err = writeStructured(g.streams.Out, "json", res)
			case staged:
				why.PrintStaged(g.streams.Out, res, stRes, snap.StagedNames())
			default:
				why.Print(g.streams.Out, res)
			}
			if err != nil {
				return fail(err)
			}
			if final != hoststate.Allow {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&proto, "proto", "tcp", "protocol: tcp, udp, icmp, icmpv6, sctp, udplite or a number")
	f.Uint16Var(&port, "port", 0, "destination port (tcp, udp, sctp, udplite)")
	f.Uint16Var(&srcPort, "src-port", 40000, "source port")
	f.IntVar(&family, "family", 0, "4 or 6: the address family when both ends have both (default IPv4)")
	f.BoolVar(&staged, "staged", false, "also show the trace the staged policies would give once promoted")
	f.StringVarP(&output, "output", "o", "", "json for scripts")
	return cmd
}

func parseProto(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp":
		return 1, nil
	case "icmpv6":
		return 58, nil
	case "sctp":
		return 132, nil
	case "udplite":
		return 136, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("unknown protocol %q: use tcp, udp, icmp, icmpv6, sctp, udplite or a number 1-255", s)
	}
	return uint8(n), nil
}
