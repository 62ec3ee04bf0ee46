package cli

import (
	"fmt"
	"log/slog"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/datastore/embedetcd"
	"github.com/servalnet/serval/internal/selector"
	"github.com/servalnet/serval/internal/version"
)

func newSelectorCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "selector",
		Short: "Work with label selectors",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "match SELECTOR [KEY=VALUE...]",
		Short: "Say whether a selector matches a set of labels (exit 0 match, 1 no match, 2 bad selector)",
		Example: `  servalctl selector match "role == 'db' && env in {'prod','staging'}" role=db env=prod
  servalctl selector match "!has(deprecated)"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := selector.Parse(args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			labels := map[string]string{}
			for _, a := range args[1:] {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					return &ExitError{Code: 2, Err: fmt.Errorf("label %q is not KEY=VALUE", a)}
				}
				labels[k] = v
			}
			if sel.Evaluate(labels) {
				fmt.Fprintln(g.streams.Out, "match")
				return nil
			}
			fmt.Fprintln(g.streams.Out, "no match")
			return &ExitError{Code: 1}
		},
	})
	return cmd
}

func newDatastoreCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "datastore",
		Short: "Run or inspect the datastore",
	}
	var cfg embedetcd.Config
	serve := &cobra.Command{
		Use:   "serve --data-dir DIR",
		Short: "Run a single-member etcd for this machine in the foreground, until interrupted",
		Long: `Run one embedded etcd member, the single-machine datastore, in the foreground.
It listens on loopback by default; stop it with Ctrl-C or SIGTERM. The data in
--data-dir survives restarts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				return fmt.Errorf("--data-dir is required: the directory where etcd keeps its data")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg.Logger = slog.New(slog.NewTextHandler(g.streams.Err, nil)).With("component", "datastore")
			srv, err := embedetcd.Start(ctx, cfg)
			if err != nil {
				return fmt.Errorf("starting the datastore in %s: %w", cfg.DataDir, err)
			}
			fmt.Fprintf(g.streams.Out, "datastore ready: clients connect to %s (data in %s); Ctrl-C to stop\n", srv.ClientURL(), cfg.DataDir)
			<-ctx.Done()
			srv.Close()
			fmt.Fprintln(g.streams.Out, "datastore stopped")
			return nil
		},
	}
	serve.Flags().StringVar(&cfg.DataDir, "data-dir", "", "directory for etcd's data (created if missing)")
	serve.Flags().StringVar(&cfg.Name, "name", "serval", "name of this etcd member")
	serve.Flags().StringVar(&cfg.ListenClientURL, "listen-client", "http://127.0.0.1:2379", "URL clients connect to")
	serve.Flags().StringVar(&cfg.ListenPeerURL, "listen-peer", "http://127.0.0.1:2380", "URL for etcd peer traffic")
	cmd.AddCommand(serve)
	return cmd
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of servalctl",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.streams.Out, "servalctl %s (commit %s, %s, %s/%s)\n",
				version.Version, version.GitCommit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
