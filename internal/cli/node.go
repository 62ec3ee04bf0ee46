package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/node"
)

func newNodeCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Ask this host's serval-node how it is doing",
	}
	var socket, output string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show this host's BGP sessions and agent health (run as root on the host)",
		Long: `Show the BGP sessions of the serval-node running on this host, as calicoctl node
status does, then its health. It talks to the agent over a unix socket that only root
can open, not over the network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := fetchStatus(cmd.Context(), socket, g.timeout)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeStructured(g.streams.Out, "json", rep)
			}
			if output != "" {
				return fmt.Errorf("unknown output format %q: use json, or nothing for a table", output)
			}
			printStatus(g.streams.Out, rep)
			return nil
		},
	}
	status.Flags().StringVar(&socket, "socket", node.DefaultStatusSocket, "serval-node's status socket")
	status.Flags().StringVarP(&output, "output", "o", "", "json for scripts")
	cmd.AddCommand(status)
	return cmd
}

func fetchStatus(ctx context.Context, socket string, timeout time.Duration) (*node.StatusReport, error) {
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://serval-node/status", nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("serval-node is not answering on %s (is it running on this host, and are you root?): %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("serval-node answered %s: %s", resp.Status, b)
	}
	var rep node.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading serval-node's status: %w", err)
	}
	return &rep, nil
}

// printStatus prints the report the way calicoctl node status does, so that
// people who know Calico read it at a glance.
func printStatus(w io.Writer, rep *node.StatusReport) {
	h := rep.Health
	state := "running"
	if !h.Live {
		state = "not responding"
	}
	fmt.Fprintf(w, "Serval process is %s (node %s).\n", state, rep.Node)
	fmt.Fprintf(w, "Ready: %v (datastore in sync: %v, dataplane programmed: %v)\n", h.Ready, h.InSync, h.Programmed)
	for _, p := range h.OverlayProblems {
		fmt.Fprintf(w, "Overlay: %s\n", p)
	}
	if h.LastError != "" {
		fmt.Fprintf(w, "Last dataplane error: %s\n", h.LastError)
	}
	if rep.BGP == nil {
		fmt.Fprintln(w, "\nBGP is disabled on this node.")
		return
	}
	if rep.BGP.Error != "" {
		fmt.Fprintf(w, "\nBGP status unavailable: %s\n", rep.BGP.Error)
	}
	for _, fam := range []struct {
		name string
		v4   bool
	}{{"IPv4", true}, {"IPv6", false}} {
		fmt.Fprintf(w, "\n%s BGP status\n", fam.name)
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER ADDRESS\tPEER TYPE\tSTATE\tSINCE\tINFO\tROUTES IN/OUT")
		n := 0
		for _, p := range rep.BGP.Peers {
			ip := net.ParseIP(p.Address)
			if ip == nil || (ip.To4() != nil) != fam.v4 {
				continue
			}
			n++
			since := "-"
			if !p.Since.IsZero() {
				since = p.Since.Local().Format("15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\n", p.Address, p.Type, p.State, since, p.Info, p.RoutesReceived, p.RoutesAdvertised)
		}
		tw.Flush()
		if n == 0 {
			fmt.Fprintf(w, "No %s peers found.\n", fam.name)
		}
	}
}
