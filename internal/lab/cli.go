package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/kubeapi"
)

// ExitError makes Main exit with Code after printing Err (if any).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs serval-lab with args and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		err = ee.Err
	}
	if err != nil {
		fmt.Fprintf(stderr, "serval-lab: %v\n", err)
	}
	return code
}

type cliOpts struct {
	name    string
	runRoot string
	binDir  string
	verbose bool
	stdout  io.Writer
	stderr  io.Writer
}

func (c *cliOpts) options() Options {
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	h := slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{} // progress for humans: the time adds nothing
		}
		return a
	}})
	return Options{RunRoot: c.runRoot, BinDir: c.binDir, Logger: slog.New(h).With("component", "serval-lab")}
}

func (c *cliOpts) open() (*Lab, error) { return Open(c.name, c.options()) }

func needRoot() error {
	if !isRoot() {
		return &ExitError{Code: 2, Err: errors.New("this command needs root (it enters network namespaces)")}
	}
	return nil
}

// runE is a cobra command's RunE.
type runE = func(cmd *cobra.Command, args []string) error

// asRoot refuses (exit status 2) before run when this process is not root.
func asRoot(run runE) runE {
	return func(cmd *cobra.Command, args []string) error {
		if err := needRoot(); err != nil {
			return err
		}
		return run(cmd, args)
	}
}

// onLab is the RunE of a command that acts on a running lab: as root, it
// opens the lab (--name, or the only one) and hands it to run, so that
// each command says only what is its own. A lab that does not open exits
// with openFail: 1 like any failure, but 2 for the commands whose exit 1
// is an answer (probe: denied, matrix: differs).
func (c *cliOpts) onLab(openFail int, run func(cmd *cobra.Command, l *Lab, args []string) error) runE {
	return asRoot(func(cmd *cobra.Command, args []string) error {
		l, err := c.open()
		if err != nil {
			return &ExitError{Code: openFail, Err: err}
		}
		return run(cmd, l, args)
	})
}

// passThrough is the RunE of a command that hands its arguments to
// another program (DisableFlagParsing): cobra then parses none of its
// flags, not even the persistent ones given before its name (serval-lab
// --name x servalctl get nodes), so those are taken off the front of args
// here.
func (c *cliOpts) passThrough(run func(cmd *cobra.Command, l *Lab, args []string) error) runE {
	return func(cmd *cobra.Command, args []string) error {
		pf := cmd.Root().PersistentFlags()
		for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "--" {
			name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
			f := pf.Lookup(name)
			if f == nil && len(name) == 1 {
				f = pf.ShorthandLookup(name)
			}
			if f == nil {
				break
			}
			args = args[1:]
			if !hasValue {
				if f.Value.Type() == "bool" {
					value = "true"
				} else if len(args) > 0 {
					value, args = args[0], args[1:]
				} else {
					return &ExitError{Code: 2, Err: fmt.Errorf("flag --%s needs a value", f.Name)}
				}
			}
			if err := pf.Set(f.Name, value); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("flag --%s: %w", f.Name, err)}
			}
		}
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		return c.onLab(1, run)(cmd, args)
	}
}

// execIn replaces this process with argv run in network namespace ns:
// the command gets the terminal, the signals and the exit status, with
// nothing in between. It returns only on failure.
func execIn(ns string, argv ...string) error {
	return execInEnv(ns, os.Environ(), argv...)
}

// execInEnv is execIn with the environment env.
func execInEnv(ns string, env []string, argv ...string) error {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("finding ip: %w", err)}
	}
	return &ExitError{Code: 2, Err: syscall.Exec(ip, append([]string{"ip", "netns", "exec", ns}, argv...), env)}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	c := &cliOpts{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "serval-lab",
		Short: "serval-lab builds a virtual data center in network namespaces and runs Serval in it",
		Long: `serval-lab builds a virtual data center on this machine out of network namespaces:
a fabric (a bridge in its own namespace), hosts on it, an optional top-of-rack router
(BIRD), a datastore (embedded etcd, an etcd cluster, or a Kubernetes API server),
and workloads wired by the real serval-cni plugin.
It never touches the real host's interfaces, routes or firewall. Run it as root.

  serval-lab up -f lab/demo.yaml
  serval-lab status
  serval-lab probe A C --proto icmp
  serval-lab matrix --proto tcp --port 80
  serval-lab exec host1 -- ip route
  serval-lab down`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	f.StringVar(&c.name, "name", os.Getenv("SERVAL_LAB"), "lab to act on (default: the only one running) [$SERVAL_LAB]")
	f.StringVar(&c.runRoot, "run-root", DefaultRunRoot, "where labs keep their state")
	f.StringVar(&c.binDir, "bin-dir", "", "directory of servalctl, serval, serval-ipam, serval-node (default: this executable's)")
	f.BoolVarP(&c.verbose, "verbose", "v", false, "log more")

	root.AddCommand(upCmd(c), downCmd(c), statusCmd(c), listCmd(c), execCmd(c), probeCmd(c), matrixCmd(c),
		addWorkloadCmd(c), deleteWorkloadCmd(c), agentCmd(c), datastoreCmd(c), linkCmd(c), servalctlCmd(c), kubeconfigCmd(c), kubectlCmd(c))
	return root
}

func upCmd(c *cliOpts) *cobra.Command {
	var file string
	var keep bool
	cmd := &cobra.Command{
		Use:   "up -f TOPOLOGY.yaml",
		Short: "build the lab a topology file describes; returns when every host is ready",
		Args:  cobra.NoArgs,
		RunE: asRoot(func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &ExitError{Code: 2, Err: errors.New("up needs -f TOPOLOGY.yaml")}
			}
			t, err := LoadTopology(file)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if c.name != "" && c.name != t.Name {
				return &ExitError{Code: 2, Err: fmt.Errorf("--name %s differs from the topology's name %s", c.name, t.Name)}
			}
			start := time.Now()
			l, err := Up(cmd.Context(), t, c.options())
			if err != nil {
				if !keep {
					fmt.Fprintln(c.stderr, "serval-lab: bring-up failed; removing what was built (use --keep-on-error to inspect it)")
					if derr := Down(context.Background(), t.Name, c.options()); derr != nil {
						err = errors.Join(err, derr)
					}
				}
				return err
			}
			fmt.Fprintf(c.stdout, "lab %s is up (%s): %d hosts, %d workloads\n", l.Name, time.Since(start).Round(100*time.Millisecond), len(t.Hosts), len(t.Workloads))
			if !l.HasAgent() {
				fmt.Fprintln(c.stdout, "note: serval-node is not built yet: no BGP, no policy, no cross-host routing in this lab")
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "topology file")
	cmd.Flags().BoolVar(&keep, "keep-on-error", false, "leave a lab that failed to come up in place for inspection")
	return cmd
}

func downCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "remove everything a lab made (processes, namespaces, veths, files), even after a crash",
		Args:  cobra.NoArgs,
		RunE: asRoot(func(cmd *cobra.Command, _ []string) error {
			name := c.name
			if name == "" {
				names, err := List(c.options())
				if err != nil {
					return err
				}
				if len(names) == 0 {
					fmt.Fprintln(c.stdout, "no lab to remove")
					return nil
				}
			}
			if err := Down(cmd.Context(), name, c.options()); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "lab removed")
			return nil
		}),
	}
}

func statusCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "show hosts, workloads, the datastore, the router and BGP sessions",
		Args:  cobra.NoArgs,
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, _ []string) error {
			return l.Status(cmd.Context(), c.stdout)
		}),
	}
}

func listCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list the labs on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := List(c.options())
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(c.stdout, n)
			}
			return nil
		},
	}
}

func execCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NAME -- CMD [ARG...]",
		Short: "run a command in the namespace of a host, workload, the router, 'datastore' or 'fabric'",
		Args:  cobra.MinimumNArgs(2),
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, args []string) error {
			ns := l.Netns(args[0])
			if !netnsExists(ns) {
				return &ExitError{Code: 2, Err: fmt.Errorf("%q is not a member of lab %s (no namespace %s)", args[0], l.Name, ns)}
			}
			return execInEnv(ns, l.ExecEnv(args[0], os.Environ()), args[1:]...)
		}),
	}
}

func probeFlags(cmd *cobra.Command, spec *ProbeSpec, timeout time.Duration) {
	cmd.Flags().StringVar(&spec.Proto, "proto", "tcp", "tcp, udp or icmp")
	cmd.Flags().IntVar(&spec.Port, "port", 80, "port for tcp and udp")
	cmd.Flags().DurationVar(&spec.Timeout, "timeout", timeout, "how long to wait for an answer before 'denied'")
}

func probeCmd(c *cliOpts) *cobra.Command {
	var spec ProbeSpec
	cmd := &cobra.Command{
		Use:   "probe FROM TO",
		Short: "try to reach TO from FROM (workload, host, router or address); prints allowed or denied, exit 0 or 1 (2 on error)",
		Long: `probe starts a listener in TO (a small one inside serval-lab: no netcat needed), tries to
reach it from FROM, and prints "allowed" (exit 0) or "denied" (exit 1): refused, unreachable
and no answer within --timeout all count as denied. An error is exit status 2.`,
		Args: cobra.ExactArgs(2),
		RunE: c.onLab(2, func(cmd *cobra.Command, l *Lab, args []string) error {
			ok, err := l.Probe(cmd.Context(), args[0], args[1], spec)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			s, _ := spec.withDefaults()
			if ok {
				fmt.Fprintf(c.stdout, "allowed: %s -> %s %s\n", args[0], args[1], s)
				return nil
			}
			fmt.Fprintf(c.stdout, "denied: %s -> %s %s\n", args[0], args[1], s)
			return &ExitError{Code: 1}
		}),
	}
	probeFlags(cmd, &spec, 2*time.Second)
	cmd.Flags().BoolVar(&spec.NoListener, "no-listener", false, "do not start a listener in TO (then only something already listening answers)")
	return cmd
}

func matrixCmd(c *cliOpts) *cobra.Command {
	var spec ProbeSpec
	var expect string
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "probe every ordered pair of workloads and print the table",
		Long: `matrix probes every ordered pair of workloads. With --expect FILE (a table in the same
format, cells allow, deny or -) it exits 1 and names every cell that differs.`,
		Args: cobra.NoArgs,
		RunE: c.onLab(2, func(cmd *cobra.Command, l *Lab, _ []string) error {
			var want map[[2]string]bool
			if expect != "" {
				data, err := os.ReadFile(expect)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("reading expected matrix: %w", err)}
				}
				if _, want, err = ParseMatrix(string(data)); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", expect, err)}
				}
			}
			names, res, err := l.Matrix(cmd.Context(), spec)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			FormatMatrix(c.stdout, spec, names, res)
			if want != nil {
				if diffs := CompareMatrix(want, names, res); len(diffs) > 0 {
					return &ExitError{Code: 1, Err: fmt.Errorf("the matrix differs from %s:\n  %s", expect, strings.Join(diffs, "\n  "))}
				}
				fmt.Fprintf(c.stdout, "as expected (%s)\n", expect)
			}
			return nil
		}),
	}
	probeFlags(cmd, &spec, time.Second)
	cmd.Flags().StringVar(&expect, "expect", "", "file with the expected table; exit 1 when the lab differs")
	return cmd
}

func addWorkloadCmd(c *cliOpts) *cobra.Command {
	var w Workload
	var labels []string
	cmd := &cobra.Command{
		Use:   "add-workload NAME --host HOST [--address IP] [--namespace NS] [--label K=V]... [--profile P]...",
		Short: "add a workload to a running lab, through serval-cni",
		Args:  cobra.ExactArgs(1),
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, args []string) error {
			w.Name = args[0]
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return &ExitError{Code: 2, Err: fmt.Errorf("--label %q: want KEY=VALUE", kv)}
				}
				if w.Labels == nil {
					w.Labels = map[string]string{}
				}
				w.Labels[k] = v
			}
			if err := l.AddWorkload(cmd.Context(), w); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "workload %s added on %s with address %s\n", w.Name, w.Host, l.State.Workloads[w.Name].IP)
			return nil
		}),
	}
	cmd.Flags().StringVar(&w.Host, "host", "", "host to run it on")
	cmd.Flags().StringVar(&w.Address, "address", "", "static address (default: from IPAM)")
	cmd.Flags().StringVar(&w.Namespace, "namespace", "", "namespace (default: default)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&w.Profiles, "profile", nil, "profile (repeatable)")
	return cmd
}

func deleteWorkloadCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "delete-workload NAME",
		Short: "remove a workload from a running lab, through serval-cni",
		Args:  cobra.ExactArgs(1),
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, args []string) error {
			if err := l.DeleteWorkload(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "workload %s deleted\n", args[0])
			return nil
		}),
	}
}

func agentCmd(c *cliOpts) *cobra.Command {
	return processCmd(c, "agent stop|kill|start HOST",
		"stop serval-node on a host (SIGTERM), kill it (SIGKILL), or start it again", "serval-node on",
		(*Lab).AgentStop, (*Lab).AgentStart)
}

// processCmd is the stop|kill|start command for one kind of lab process
// (agents, datastore members): what differs is only how to stop and start.
func processCmd(c *cliOpts, use, short, what string,
	stop func(l *Lab, name string, kill bool) error,
	start func(l *Lab, ctx context.Context, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:       use,
		Short:     short,
		Args:      cobra.ExactArgs(2),
		ValidArgs: []string{"stop", "kill", "start"},
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, args []string) error {
			var err error
			switch args[0] {
			case "stop":
				err = stop(l, args[1], false)
			case "kill":
				err = stop(l, args[1], true)
			case "start":
				err = start(l, cmd.Context(), args[1])
			default:
				return &ExitError{Code: 2, Err: fmt.Errorf("%q: want stop, kill or start", args[0])}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s %s: %s done\n", what, args[1], args[0])
			return nil
		}),
	}
}

func servalctlCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:                "servalctl ARGS...",
		Short:              "run servalctl against the lab's datastore (e.g. serval-lab servalctl apply -f policy.yaml)",
		DisableFlagParsing: true,
		RunE: c.passThrough(func(cmd *cobra.Command, l *Lab, args []string) error {
			return execIn(l.Netns("datastore"), append(append([]string{l.bin("servalctl")}, l.datastoreArgs()...), args...)...)
		}),
	}
}

func kubeconfigCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig",
		Short: "print the path of the admin kubeconfig of a lab whose datastore is kubernetes (its server is reached from the lab's namespaces: see 'serval-lab kubectl')",
		Args:  cobra.NoArgs,
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, _ []string) error {
			if !l.State.Topology.Kubernetes() {
				return fmt.Errorf("lab %s has no Kubernetes API server (its datastore is %s)", l.Name, l.State.Topology.Datastore.Kind)
			}
			fmt.Fprintln(c.stdout, l.KubeconfigPath())
			return nil
		}),
	}
}

func kubectlCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl ARGS...",
		Short:              "run kubectl against a kubernetes lab's API server, from the datastore namespace (e.g. serval-lab kubectl get pods -A)",
		DisableFlagParsing: true,
		RunE: c.passThrough(func(cmd *cobra.Command, l *Lab, args []string) error {
			if !l.State.Topology.Kubernetes() {
				return fmt.Errorf("lab %s has no Kubernetes API server (its datastore is %s)", l.Name, l.State.Topology.Datastore.Kind)
			}
			bin, err := kubeapi.Binary("", "kubectl")
			if err != nil {
				return err
			}
			return execIn(l.Netns("datastore"), append([]string{bin, "--kubeconfig", l.KubeconfigPath()}, args...)...)
		}),
	}
}
