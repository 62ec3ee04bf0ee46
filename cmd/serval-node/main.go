// Command serval-node is the per-host agent: it registers the host, turns
// the datastore's policy into the host's firewall and routes, and speaks
// BGP. All logic lives in internal/node; this file reads the configuration
// and wires the kernel-facing parts.

// Go 1.24+ makes listeners MPTCP by default, and the kernel refuses TCP MD5
// keys on MPTCP sockets (ENOPROTOOPT), so BGPPeer passwords would fail on
// GoBGP's listener. BGP runs over plain TCP.
//
//go:debug multipathtcp=0
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --pprof-listen
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/netconst"
	"github.com/servalnet/serval/internal/node"
	"github.com/servalnet/serval/internal/nodestatus"
	"github.com/servalnet/serval/internal/overlay"
	"github.com/servalnet/serval/internal/routing"
	"github.com/servalnet/serval/internal/version"
)

func main() {
	os.Exit(run())
}

func run() int {
	host, _ := os.Hostname()
	var cfg node.Config
	var etcd datastore.EtcdConfig
	var dsType, kubeconfig, endpoints, logLevel, secretsDir, pprofListen, memoryLimit string
	var showVersion, programOutsidePools, overlayOn bool
	var mtuFile string
	bgpDefault, err := envBool(os.LookupEnv, "SERVAL_BGP", true)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: %v\n", err)
		return 2
	}
	outsideDefault, err := envBool(os.LookupEnv, "SERVAL_PROGRAM_OUTSIDE_POOLS", true)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: %v\n", err)
		return 2
	}
	bgpGrace, err := envDuration(os.LookupEnv, "SERVAL_BGP_READY_GRACE", node.DefaultBGPGrace)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: %v\n", err)
		return 2
	}
	overlayDefault, err := envBool(os.LookupEnv, "SERVAL_OVERLAY", true)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: %v\n", err)
		return 2
	}
	var maxPrefixes string
	fs := flag.NewFlagSet("serval-node", flag.ContinueOnError)
	fs.StringVar(&cfg.NodeName, "nodename", env("SERVAL_NODENAME", host), "this host's Node name [$SERVAL_NODENAME]")
	fs.StringVar(&dsType, "datastore-type", env(datastore.EnvType, datastore.TypeEtcdV3), "etcdv3 or kubernetes [$"+datastore.EnvType+"]")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the Kubernetes API server, with --datastore-type kubernetes (default: $KUBECONFIG, else the in-cluster service account)")
	fs.StringVar(&endpoints, "etcd-endpoints", env("SERVAL_ETCD_ENDPOINTS", "http://127.0.0.1:2379"), "etcd endpoints, comma-separated [$SERVAL_ETCD_ENDPOINTS]")
	fs.StringVar(&etcd.CertFile, "etcd-cert-file", env("SERVAL_ETCD_CERT_FILE", ""), "etcd client certificate [$SERVAL_ETCD_CERT_FILE]")
	fs.StringVar(&etcd.KeyFile, "etcd-key-file", env("SERVAL_ETCD_KEY_FILE", ""), "etcd client key [$SERVAL_ETCD_KEY_FILE]")
	fs.StringVar(&etcd.CAFile, "etcd-ca-cert-file", env("SERVAL_ETCD_CA_CERT_FILE", ""), "CA of etcd's server certificate [$SERVAL_ETCD_CA_CERT_FILE]")
	fs.StringVar(&etcd.Username, "etcd-username", env("SERVAL_ETCD_USERNAME", ""), "etcd user [$SERVAL_ETCD_USERNAME]")
	fs.StringVar(&etcd.Password, "etcd-password", env("SERVAL_ETCD_PASSWORD", ""), "etcd password [$SERVAL_ETCD_PASSWORD]")
	fs.StringVar(&cfg.IPv4, "ip", env("IP", "autodetect"), "IPv4 address with prefix length, autodetect or none [$IP]")
	fs.StringVar(&cfg.IPv6, "ip6", env("IP6", "none"), "IPv6 address with prefix length, autodetect or none [$IP6]")
	fs.StringVar(&cfg.IPv4Method, "ip-autodetection-method", env("IP_AUTODETECTION_METHOD", "first-found"),
		"first-found, interface=REGEX, skip-interface=REGEX, can-reach=DEST or cidr=CIDR [$IP_AUTODETECTION_METHOD]")
	fs.StringVar(&cfg.IPv6Method, "ip6-autodetection-method", env("IP6_AUTODETECTION_METHOD", "first-found"), "as --ip-autodetection-method, for IPv6 [$IP6_AUTODETECTION_METHOD]")
	fs.StringVar(&cfg.ASNumber, "as", env("AS", ""), "this node's AS number (default: the cluster's) [$AS]")
	fs.StringVar(&cfg.HealthListen, "health-listen", env("SERVAL_HEALTH_LISTEN", "127.0.0.1:9099"), "address for /liveness and /readiness; empty disables; when given, FelixConfiguration's healthEnabled/Host/Port do not apply [$SERVAL_HEALTH_LISTEN]")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", env("SERVAL_METRICS_LISTEN", "127.0.0.1:9091"), "address for Prometheus /metrics; empty disables; when given, FelixConfiguration's prometheusMetricsEnabled/Host/Port do not apply [$SERVAL_METRICS_LISTEN]")
	fs.StringVar(&cfg.StatusSocket, "status-socket", env(nodestatus.SocketEnv, nodestatus.DefaultSocket), "unix socket for 'servalctl node status' [$"+nodestatus.SocketEnv+"]")
	fs.BoolVar(&cfg.BGP, "bgp", bgpDefault, "run the embedded BGP speaker [$SERVAL_BGP]")
	// Calico's BIRD programs every route it learns, so a default route or a
	// prefix a top-of-rack router advertises is usable by the host; false
	// keeps BGP to the IP pools (for hosts whose own routing owns the rest).
	fs.BoolVar(&programOutsidePools, "program-outside-pools", outsideDefault,
		"also program learned routes outside the IP pools, as Calico does [$SERVAL_PROGRAM_OUTSIDE_POOLS]")
	fs.DurationVar(&cfg.BGPGrace, "bgp-ready-grace", bgpGrace,
		"how long a BGP session that should be up may be down before /readiness says not ready (0 is the default) [$SERVAL_BGP_READY_GRACE]")
	fs.StringVar(&maxPrefixes, "bgp-max-prefixes", env("SERVAL_BGP_MAX_PREFIXES", strconv.Itoa(routing.DefaultMaxPrefixes)),
		"most prefixes one BGP peer may send per address family; a peer that sends more is cut off; 0 or less: no limit [$SERVAL_BGP_MAX_PREFIXES]")
	fs.StringVar(&secretsDir, "secrets-dir", env("SERVAL_SECRETS_DIR", "/etc/serval/secrets"), "directory of BGP password secrets (<dir>/<secret>/<key>) [$SERVAL_SECRETS_DIR]")
	fs.StringVar(&logLevel, "log-level", env("SERVAL_LOG_LEVEL", "info"), "debug, info, warn or error [$SERVAL_LOG_LEVEL]")
	fs.StringVar(&pprofListen, "pprof-listen", env("SERVAL_PPROF_LISTEN", ""), "address for Go's /debug/pprof profiles (e.g. 127.0.0.1:6060); empty disables [$SERVAL_PPROF_LISTEN]")
	fs.StringVar(&memoryLimit, "memory-limit", env("SERVAL_MEMORY_LIMIT", ""),
		"Go runtime soft memory limit, e.g. 512MiB, or off (default: $GOMEMLIMIT if set, else 256MiB) [$SERVAL_MEMORY_LIMIT]")
	fs.BoolVar(&overlayOn, "overlay", overlayDefault, "program the VXLAN overlay that IP pools with vxlanMode ask for [$SERVAL_OVERLAY]")
	fs.StringVar(&mtuFile, "mtu-file", env("SERVAL_MTU_FILE", netconst.MTUFile), "where to write the MTU new workloads get; empty disables [$SERVAL_MTU_FILE]")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	// An address given on the command line or in the environment wins over
	// FelixConfiguration's health*/prometheusMetrics* fields.
	cfg.HealthListenFixed = given(fs, "health-listen", "SERVAL_HEALTH_LISTEN")
	cfg.MetricsListenFixed = given(fs, "metrics-listen", "SERVAL_METRICS_LISTEN")
	if showVersion {
		fmt.Printf("serval-node %s (commit %s)\n", version.Version, version.GitCommit)
		return 0
	}
	maxPrefixesN, err := parseMaxPrefixes(maxPrefixes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: --bgp-max-prefixes: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: --log-level %q: %v\n", logLevel, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if _, err := node.ApplyMemoryLimit(memoryLimit, os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: --memory-limit: %v\n", err)
		return 2
	}

	if pprofListen != "" {
		// For profiling a host's agent; the default mux holds nothing but
		// the pprof handlers (health and metrics have their own).
		go func() {
			srv := &http.Server{Addr: pprofListen, ReadHeaderTimeout: 5 * time.Second}
			log.Warn("pprof endpoint stopped", "err", srv.ListenAndServe())
		}()
	}

	typ, err := datastore.ParseType(dsType)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-node: --datastore-type: %v\n", err)
		return 2
	}
	etcd.Endpoints = strings.Split(endpoints, ",")
	etcd.DialTimeout = 5 * time.Second
	etcd.Logger = log
	ds, err := openDatastore(typ, kubeconfig, etcd, log)
	if err != nil {
		log.Error("connecting to the datastore", "type", typ, "err", err)
		return 1
	}
	defer ds.Close()

	nl, err := netlink.NewHandle()
	if err != nil {
		log.Error("opening netlink", "err", err)
		return 1
	}
	// Host endpoints by expectedIPs follow their addresses as they change.
	hostChanges, err := dataplane.WatchHost(context.Background(), netns.None()) // for the life of the process
	if err != nil {
		log.Error("watching the host's addresses", "err", err)
		return 1
	}
	deps := node.Deps{
		Logger:    log,
		Datastore: ds,
		NewDataplane: func(after func(dataplane.ApplyResult)) (*dataplane.Dataplane, error) {
			return dataplane.New(dataplane.Options{
				Logger:      log,
				NFT:         dataplane.NewKernelNFT(func() (dataplane.Conn, error) { return dataplane.NewConn() }),
				Routes:      nl,
				Sysctl:      dataplane.ProcSysctl{},
				Ifaces:      nl,
				HostChanges: hostChanges,
				AfterApply:  after,
			})
		},
		Secrets: routing.SecretSources{routing.FileSecrets{Dir: secretsDir}, routing.EnvSecrets{}},
	}
	if cfg.BGP {
		deps.Speaker = routing.NewSpeaker(routing.Config{Logger: log, Netlink: nl, StartupHold: routing.DefaultRestartTime, ProgramOutsidePools: programOutsidePools, MaxPrefixes: maxPrefixesN})
	}
	if overlayOn {
		deps.Overlay = &node.OverlayDeps{
			Manager: overlay.NewManager(nl, log), Links: nl, MTUFile: mtuFile,
			IPAM: ipam.New(ds, ipam.Config{}), IPIPAvailable: overlay.IPIPAvailable(),
			Guard: func(g overlay.Guard) error {
				c, err := nftables.New()
				if err != nil {
					return fmt.Errorf("opening nftables: %w", err)
				}
				return overlay.ApplyGuard(c, g)
			},
		}
	}
	agent, err := node.New(cfg, deps)
	if err != nil {
		log.Error("configuration", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx); err != nil {
		log.Error("serval-node stopped", "err", err)
		return 1
	}
	return 0
}

// openDatastore opens the datastore of the given type: the Kubernetes API
// server of kubeconfig ($KUBECONFIG, else the in-cluster service
// account), or etcd.
func openDatastore(typ, kubeconfig string, etcd datastore.EtcdConfig, log *slog.Logger) (datastore.Interface, error) {
	if typ == datastore.TypeKubernetes {
		return kubernetes.Open(kubeconfig, "serval-node", log)
	}
	return datastore.NewEtcd(etcd)
}
