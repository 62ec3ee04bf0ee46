package cli

import (
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/ipam"
)

func newIPAMCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "Show, check and repair IP address management",
		Long: `IP address management: pools are cut into blocks that belong to hosts;
each workload's addresses are held under a handle.`,
	}
	cmd.AddCommand(newIPAMShowCommand(g), newIPAMCheckCommand(g), newIPAMReleaseCommand(g))
	return cmd
}

func newIPAMShowCommand(g *globalOptions) *cobra.Command {
	var showBlocks bool
	var ipFlag string
	cmd := &cobra.Command{
		Use:   "show [--show-blocks] [--ip ADDR]",
		Short: "Show how much of each pool is in use, or who holds an address",
		Example: `  servalctl ipam show
  servalctl ipam show --show-blocks
  servalctl ipam show --ip 10.65.0.7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ip netip.Addr
			if ipFlag != "" {
				var err error
				if ip, err = netip.ParseAddr(ipFlag); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--ip %q is not an IP address", ipFlag)}
				}
			}
			ds, err := g.openDatastore(cmd.Context())
			if err != nil {
				return err
			}
			defer ds.Close()
			c := ipam.New(ds, ipam.Config{})
			if ip.IsValid() {
				a, err := c.Lookup(cmd.Context(), ip)
				if err != nil {
					return err
				}
				printAllocation(g.streams.Out, a)
				return nil
			}
			u, err := c.Usage(cmd.Context())
			if err != nil {
				return err
			}
			return printUsage(g.streams.Out, u, showBlocks)
		},
	}
	cmd.Flags().BoolVar(&showBlocks, "show-blocks", false, "also list every block, its host and its usage")
	cmd.Flags().StringVar(&ipFlag, "ip", "", "show who holds this address")
	return cmd
}

func percent(part, whole *big.Int) string {
	if whole.Sign() == 0 {
		return "0%"
	}
	p := new(big.Rat).SetFrac(new(big.Int).Mul(part, big.NewInt(100)), whole)
	f, _ := p.Float64()
	switch {
	case f > 0 && f < 1:
		return "<1%"
	case f < 100 && f > 99:
		return ">99%"
	}
	return fmt.Sprintf("%.0f%%", f)
}

func printUsage(w io.Writer, u *ipam.Usage, showBlocks bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := "GROUPING\tCIDR\tIPS TOTAL\tIPS IN USE\tIPS FREE"
	if showBlocks {
		header += "\tHOST"
	}
	fmt.Fprintln(tw, header)
	row := func(group, cidr string, total *big.Int, inUse int, host string) {
		used := big.NewInt(int64(inUse))
		free := new(big.Int).Sub(total, used)
		line := fmt.Sprintf("%s\t%s\t%s\t%d (%s)\t%s (%s)", group, cidr, total, inUse, percent(used, total), free, percent(free, total))
		if showBlocks {
			line += "\t" + host
		}
		fmt.Fprintln(tw, line)
	}
	for _, p := range u.Pools {
		group := "IP Pool"
		if p.Disabled {
			group = "IP Pool (disabled)"
		}
		row(group, p.CIDR.String(), p.Size, p.InUse, "")
		if !showBlocks {
			continue
		}
		for _, b := range u.Blocks {
			if b.Pool == p.Name {
				host := b.Node
				if host == "" {
					host = "(none)"
				}
				row("Block", b.CIDR.String(), big.NewInt(int64(b.InUse+b.Free)), b.InUse, host)
			}
		}
	}
	if showBlocks {
		for _, b := range u.Blocks {
			if b.Pool == "" {
				row("Block (no pool)", b.CIDR.String(), big.NewInt(int64(b.InUse+b.Free)), b.InUse, b.Node)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(u.Pools) == 0 {
		fmt.Fprintln(w, "No IP pools. Create one with 'servalctl apply -f pool.yaml'.")
	}
	if u.Orphans > 0 {
		fmt.Fprintf(w, "%d address(es) are allocated in blocks outside every pool (see --show-blocks).\n", u.Orphans)
	}
	return nil
}

func printAllocation(w io.Writer, a *ipam.Allocation) {
	switch {
	case a.Allocated:
		fmt.Fprintf(w, "IP %s is in use, held by handle %q\n", a.IP, a.Handle)
		keys := make([]string, 0, len(a.Attrs))
		for k := range a.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", k, a.Attrs[k])
		}
	case a.Pool != "" || a.Block.IsValid():
		fmt.Fprintf(w, "IP %s is not assigned\n", a.IP)
	default:
		fmt.Fprintf(w, "IP %s is not in any IP pool\n", a.IP)
	}
	if a.Pool != "" {
		fmt.Fprintf(w, "  pool: %s\n", a.Pool)
	}
	if a.Block.IsValid() {
		host := a.BlockNode
		if host == "" {
			host = "(none)"
		}
		fmt.Fprintf(w, "  block: %s (host %s)\n", a.Block, host)
	}
	if a.Reserved {
		fmt.Fprintln(w, "  reserved by an IPReservation: not handed out automatically")
	}
}

func newIPAMCheckCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Find addresses and blocks that do not match endpoints and nodes",
		Long: `Compares IPAM's records with the datastore's endpoints and nodes and prints each problem:
addresses allocated that no WorkloadEndpoint uses (leaked), WorkloadEndpoint addresses
that are not allocated (they could be handed out twice), blocks and affinities of nodes
that no longer exist. Exits 1 when it finds any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := g.openDatastore(cmd.Context())
			if err != nil {
				return err
			}
			defer ds.Close()
			probs, err := ipam.New(ds, ipam.Config{}).Check(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range probs {
				fmt.Fprintln(g.streams.Out, p)
			}
			if len(probs) > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("ipam check: %d problem(s) found", len(probs))}
			}
			fmt.Fprintln(g.streams.Out, "ipam check: no problems found")
			return nil
		},
	}
}

func newIPAMReleaseCommand(g *globalOptions) *cobra.Command {
	var ipFlag string
	var force bool
	cmd := &cobra.Command{
		Use:   "release --ip ADDR [--force]",
		Short: "Free one address (refused while a WorkloadEndpoint uses it, unless --force)",
		Example: `  servalctl ipam release --ip 10.65.0.7
  servalctl ipam release --ip 10.65.0.7 --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, err := netip.ParseAddr(ipFlag)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--ip %q is not an IP address (it is required)", ipFlag)}
			}
			ctx := cmd.Context()
			ds, err := g.openDatastore(ctx)
			if err != nil {
				return err
			}
			defer ds.Close()
			c := ipam.New(ds, ipam.Config{})
			a, err := c.Lookup(ctx, ip)
			if err != nil {
				return err
			}
			if !a.Allocated {
				return fmt.Errorf("%s is not allocated: nothing to release", ip)
			}
			users, err := c.EndpointsUsing(ctx, ip)
			if err != nil {
				return err
			}
			if len(users) > 0 && !force {
				return fmt.Errorf("%s is used by WorkloadEndpoint %s: not released (delete the endpoint first, or use --force)",
					ip, strings.Join(users, ", "))
			}
			// Free exactly the allocation we looked at: if the address
			// changed hands meanwhile, leave the new holder alone.
			freed, err := c.ReleaseIPHeldBy(ctx, ip, a.Handle)
			if err != nil {
				return err
			}
			if !freed {
				return fmt.Errorf("%s changed hands while being released (it was held by handle %q): not released", ip, a.Handle)
			}
			fmt.Fprintf(g.streams.Out, "Released %s (was held by handle %q)\n", ip, a.Handle)
			return nil
		},
	}
	cmd.Flags().StringVar(&ipFlag, "ip", "", "the address to free (required)")
	cmd.Flags().BoolVar(&force, "force", false, "release even if a WorkloadEndpoint still uses the address")
	return cmd
}
