package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/nodestatus"
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
	status.Flags().StringVar(&socket, "socket", envOr(nodestatus.SocketEnv, nodestatus.DefaultSocket), "serval-node's status socket [$"+nodestatus.SocketEnv+"]")
	status.Flags().StringVarP(&output, "output", "o", "", "json for scripts")
	cmd.AddCommand(status)
	return cmd
}

func fetchStatus(ctx context.Context, socket string, timeout time.Duration) (*nodestatus.StatusReport, error) {
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
	var rep nodestatus.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading serval-node's status: %w", err)
	}
	return &rep, nil
}

// printStatus prints the report the way calicoctl node status does, so that
// people who know Calico read it at a glance.
func printStatus(w io.Writer, rep *nodestatus.StatusReport) {
	fmt.Fprintf(w, "Serval process is %s (node %s).\n", liveLine(rep.Health), rep.Node)
	fmt.Fprintln(w, readyLine(rep))
	printRejected(w, rep.Rejected)
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

// liveLine says whether the agent's workers turn, naming the stuck ones.
func liveLine(h nodestatus.Report) string {
	if h.Live {
		return "running"
	}
	var stuck []string
	for _, w := range h.Workers {
		if w.Stuck {
			stuck = append(stuck, fmt.Sprintf("%s since %s", w.Name, w.Since.Local().Format("15:04:05")))
		}
	}
	return "stuck (" + strings.Join(stuck, ", ") + ")"
}

// readyLine says whether the node is ready and, when not, why first, then
// what is fine, e.g. "Ready: no: BGP session to 172.17.8.102
// (node-to-node mesh) is Active since 14:05:01; datastore in sync;
// dataplane programmed".
func readyLine(rep *nodestatus.StatusReport) string {
	h := rep.Health
	var fine []string
	if h.InSync {
		fine = append(fine, "datastore in sync")
	}
	if h.Programmed && h.LastError == "" {
		fine = append(fine, "dataplane programmed")
	}
	if rep.BGP != nil {
		up := 0
		for _, p := range rep.BGP.Peers {
			if p.Info == "Established" {
				up++
			}
		}
		fine = append(fine, fmt.Sprintf("%d of %d BGP sessions established", up, len(rep.BGP.Peers)))
	}
	if h.Ready {
		return "Ready: yes (" + strings.Join(fine, "; ") + ")"
	}
	reasons := h.Reasons
	if len(reasons) == 0 {
		reasons = []string{"no reason given (agent older than this servalctl?)"}
	}
	return "Ready: no: " + strings.Join(append(append([]string{}, reasons...), fine...), "; ")
}

// envOr returns the environment variable's value, or def when it is unset
// or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
