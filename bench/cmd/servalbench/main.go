// Command servalbench runs `make bench`: the parts of bench/internal/runner,
// then bench/REPORT.md and bench/results.json. Logic lives in
// bench/internal; this file reads flags and wires.
//
//	servalbench                       # every part → bench/REPORT.md, bench/results.json
//	servalbench --part dataplane      # one part → bench/REPORT.dataplane.md, bench/results.dataplane.json
//	servalbench reference [--print] [KIND ...]  # the reference dataplanes alone: measure them (root), or print how they are built
//	servalbench agentload --spec JSON # internal: one agent load, run inside a network namespace
//	servalbench policy-writer --etcd URL  # internal: writes policies, run in a lab's datastore namespace
//	servalbench policy-writer --kubeconfig PATH  # the same as NetworkPolicies, for a lab on the kubernetes datastore
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
	"github.com/servalnet/serval/bench/internal/runner"
)

const intro = `Written by ` + "`make bench`" + ` (bench/cmd/servalbench, parts in bench/internal/runner). Every figure below comes from the run described here; rerun with ` + "`make bench`" + ` (all parts, as root) or ` + "`make bench PART=dataplane|control|cni|bgp|scale|kubernetes|micro`" + `. How each part measures is in bench/README.md; the only instrumentation added to Serval for it is serval-node's info line "dataplane committed" per nftables transaction that changed something (internal/node/agent.go).`

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "agentload" {
		fs := flag.NewFlagSet("agentload", flag.ContinueOnError)
		root := fs.String("root", ".", "repository root (serval-node is in ROOT/bin)")
		spec := fs.String("spec", "", "the load, as JSON")
		if err := fs.Parse(os.Args[2:]); err != nil {
			return 2
		}
		if err := runner.RunAgentLoad(ctx, *spec, filepath.Join(*root, "bin", "serval-node"), os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "servalbench agentload: %v\n", err)
			return 1
		}
		return 0
	}
	if len(os.Args) > 1 && os.Args[1] == "reference" {
		return reference(ctx, os.Args[2:])
	}
	if len(os.Args) > 1 && os.Args[1] == "policy-writer" {
		fs := flag.NewFlagSet("policy-writer", flag.ContinueOnError)
		etcd := fs.String("etcd", "", "etcd endpoints, comma-separated")
		kubeconfig := fs.String("kubeconfig", "", "the lab's kubeconfig: write NetworkPolicies to its API server instead")
		if err := fs.Parse(os.Args[2:]); err != nil {
			return 2
		}
		write := func() error { return runner.RunPolicyWriter(ctx, *etcd, os.Stdin, os.Stdout) }
		if *kubeconfig != "" {
			write = func() error { return runner.RunKubePolicyWriter(ctx, *kubeconfig, os.Stdin, os.Stdout) }
		}
		if err := write(); err != nil {
			fmt.Fprintf(os.Stderr, "servalbench policy-writer: %v\n", err)
			return 1
		}
		return 0
	}
	fs := flag.NewFlagSet("servalbench", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	parts := fs.String("part", "", "parts to run, comma-separated (default all: "+strings.Join(runner.Parts, ",")+")")
	hosts := fs.Int("hosts", 10, "hosts in the control-plane lab")
	verbose := fs.Bool("v", false, "log every command")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "servalbench")
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "servalbench: needs root (network namespaces, nftables)")
		return 2
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "servalbench: %v\n", err)
		return 2
	}
	list, md, js := runner.Parts, filepath.Join(abs, "bench", "REPORT.md"), filepath.Join(abs, "bench", "results.json")
	if *parts != "" {
		list = strings.Split(*parts, ",")
		tag := strings.ReplaceAll(*parts, ",", "-")
		md, js = filepath.Join(abs, "bench", "REPORT."+tag+".md"), filepath.Join(abs, "bench", "results."+tag+".json")
	}
	rep := report.New(runner.DescribeMachine(abs))
	rep.Root = abs
	s := &runner.Suite{Root: abs, Report: rep, Log: log, Hosts: *hosts}
	start := time.Now()
	runErr := s.Run(ctx, list)
	if err := rep.WriteFiles(md, js, time.Since(start), intro); err != nil {
		fmt.Fprintf(os.Stderr, "servalbench: %v\n", err)
		return 1
	}
	log.Info("report written", "markdown", md, "json", js, "took", time.Since(start).Round(time.Second))
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "servalbench: %v\n", runErr)
		return 1
	}
	return 0
}

// reference is `servalbench reference`: the benchmark's reference
// dataplanes without the rest of the part.
func reference(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("reference", flag.ContinueOnError)
	printOnly := fs.Bool("print", false, "print the commands that build each reference instead of running them")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	kinds := fs.Args()
	if len(kinds) == 0 {
		kinds = runner.ReferenceKinds()
	}
	if *printOnly {
		for _, k := range kinds {
			fmt.Printf("# %s\n", k)
			if err := runner.PrintReference(os.Stdout, k); err != nil {
				fmt.Fprintf(os.Stderr, "servalbench reference: %v\n", err)
				return 2
			}
		}
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "servalbench reference: needs root (network namespaces)")
		return 2
	}
	if err := runner.RunReference(ctx, kinds, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "servalbench reference: %v\n", err)
		return 1
	}
	return 0
}
