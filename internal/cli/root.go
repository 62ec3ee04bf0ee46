package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
)

// Streams are where a command reads and writes; tests replace them.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

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

// Main runs servalctl with args and returns the process exit status.
func Main(ctx context.Context, args []string, s Streams) int {
	root := NewRootCommand(s)
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
		msg := err.Error()
		if !strings.HasSuffix(msg, "\n") {
			msg += "\n"
		}
		fmt.Fprint(s.Err, msg)
	}
	return code
}

// globalOptions are the flags every command shares: how to reach the datastore.
type globalOptions struct {
	dsType     string
	etcd       datastore.EtcdConfig
	kubeconfig string
	timeout    time.Duration
	streams    Streams
}

// NewRootCommand builds the servalctl command tree.
func NewRootCommand(s Streams) *cobra.Command {
	g := &globalOptions{streams: s}
	root := &cobra.Command{
		Use:   "servalctl",
		Short: "servalctl manages a Serval network: resources, IPAM, nodes and the datastore",
		Long: `servalctl manages a Serval network.

Resources use Calico's projectcalico.org/v3 API: IPPool, BGPConfiguration, BGPPeer,
GlobalNetworkPolicy, NetworkPolicy, Tier, Profile, HostEndpoint, WorkloadEndpoint,
NetworkSet, GlobalNetworkSet, Node, IPAMConfiguration and FelixConfiguration; and the
staged (never enforced) StagedGlobalNetworkPolicy, StagedNetworkPolicy and
StagedKubernetesNetworkPolicy, which 'servalctl why --staged' previews.

The datastore is etcd v3, given by --etcd-endpoints or SERVAL_ETCD_ENDPOINTS
(default http://127.0.0.1:2379). On a single machine, start one with
'servalctl datastore serve --data-dir DIR'. With --datastore-type kubernetes
(or SERVAL_DATASTORE_TYPE=kubernetes) it is the Kubernetes API server that
--kubeconfig, $KUBECONFIG or the in-cluster service account names, with
Serval's CustomResourceDefinitions installed.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)

	f := root.PersistentFlags()
	f.StringVar(&g.dsType, "datastore-type", os.Getenv(datastore.EnvType),
		"etcdv3 (the default) or kubernetes [$"+datastore.EnvType+"]")
	f.StringVar(&g.kubeconfig, "kubeconfig", "",
		"kubeconfig of the Kubernetes API server, with --datastore-type kubernetes (default: $KUBECONFIG, else the in-cluster service account)")
	f.StringSliceVar(&g.etcd.Endpoints, "etcd-endpoints", envList("SERVAL_ETCD_ENDPOINTS", "http://127.0.0.1:2379"),
		"etcd endpoints, comma-separated [$SERVAL_ETCD_ENDPOINTS]")
	f.StringVar(&g.etcd.CertFile, "etcd-cert-file", os.Getenv("SERVAL_ETCD_CERT_FILE"), "client certificate for etcd TLS [$SERVAL_ETCD_CERT_FILE]")
	f.StringVar(&g.etcd.KeyFile, "etcd-key-file", os.Getenv("SERVAL_ETCD_KEY_FILE"), "client key for etcd TLS [$SERVAL_ETCD_KEY_FILE]")
	f.StringVar(&g.etcd.CAFile, "etcd-ca-cert-file", os.Getenv("SERVAL_ETCD_CA_CERT_FILE"), "CA certificate that signed etcd's server certificate [$SERVAL_ETCD_CA_CERT_FILE]")
	f.StringVar(&g.etcd.Username, "etcd-username", os.Getenv("SERVAL_ETCD_USERNAME"), "etcd user [$SERVAL_ETCD_USERNAME]")
	f.StringVar(&g.etcd.Password, "etcd-password", os.Getenv("SERVAL_ETCD_PASSWORD"), "etcd password [$SERVAL_ETCD_PASSWORD]")
	f.DurationVar(&g.timeout, "timeout", 10*time.Second, "how long to wait for the datastore")

	root.AddCommand(
		newWriteCommand(g, opCreate),
		newWriteCommand(g, opApply),
		newWriteCommand(g, opReplace),
		newDeleteCommand(g),
		newGetCommand(g),
		newPatchCommand(g),
		newLabelCommand(g),
		newValidateCommand(g),
		newSelectorCommand(g),
		newDatastoreCommand(g),
		newIPAMCommand(g),
		newNodeCommand(g),
		newVersionCommand(g),
		newWhyCommand(g),
	)
	return root
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

// openDatastore connects to etcd and checks that it answers, so that a
// command fails with one clear message before it has done anything.
func (g *globalOptions) openDatastore(ctx context.Context) (datastore.Interface, error) {
	typ, err := datastore.ParseType(g.dsType)
	if err != nil {
		return nil, err
	}
	if typ == datastore.TypeKubernetes {
		return g.openKubernetes(ctx)
	}
	cfg := g.etcd
	cfg.DialTimeout = g.timeout
	ds, err := datastore.NewEtcd(cfg)
	if err != nil {
		return nil, g.unreachable(err)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := ds.Check(ctx); err != nil {
		ds.Close()
		return nil, g.unreachable(err)
	}
	return ds, nil
}

// openKubernetes connects to the Kubernetes API server and checks that it
// serves Serval's kinds.
func (g *globalOptions) openKubernetes(ctx context.Context) (datastore.Interface, error) {
	ds, err := kubernetes.Open(g.kubeconfig, "servalctl", nil, kubernetes.WithRequestTimeout(g.timeout))
	if err != nil {
		return nil, fmt.Errorf("cannot use the Kubernetes datastore: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := ds.Check(ctx); err != nil {
		ds.Close()
		return nil, fmt.Errorf("cannot use the Kubernetes datastore: %w", err)
	}
	return ds, nil
}

func (g *globalOptions) unreachable(err error) error {
	return fmt.Errorf("cannot use the datastore at %s: %w\n"+
		"(start one with 'servalctl datastore serve --data-dir DIR', or point --etcd-endpoints / SERVAL_ETCD_ENDPOINTS at your etcd)",
		strings.Join(g.etcd.Endpoints, ","), err)
}
