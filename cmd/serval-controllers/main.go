// Command serval-controllers runs the controllers a Kubernetes cluster
// running Serval needs (today the IPAM garbage collector), one replica
// acting at a time through a Lease. It only wires flags to
// internal/controllers, where the logic lives; docs/CONTROLLERS.md
// describes it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/servalnet/serval/internal/controllers"
	"github.com/servalnet/serval/internal/controllers/ipamgc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/kube"
	"github.com/servalnet/serval/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(args []string) int {
	host, _ := os.Hostname()
	var o controllers.Options
	var etcd datastore.EtcdConfig
	var dsType, endpoints, kubeconfig, logLevel string
	var showVersion bool
	fs := flag.NewFlagSet("serval-controllers", flag.ContinueOnError)
	fs.StringVar(&dsType, "datastore-type", env(datastore.EnvType, datastore.TypeEtcdV3), "where IPAM state lives: etcdv3 or kubernetes (the API server of --kubeconfig) [$"+datastore.EnvType+"]")
	fs.StringVar(&endpoints, "etcd-endpoints", env("SERVAL_ETCD_ENDPOINTS", "http://127.0.0.1:2379"), "etcd endpoints, comma-separated [$SERVAL_ETCD_ENDPOINTS]")
	fs.StringVar(&etcd.CertFile, "etcd-cert-file", os.Getenv("SERVAL_ETCD_CERT_FILE"), "etcd client certificate [$SERVAL_ETCD_CERT_FILE]")
	fs.StringVar(&etcd.KeyFile, "etcd-key-file", os.Getenv("SERVAL_ETCD_KEY_FILE"), "etcd client key [$SERVAL_ETCD_KEY_FILE]")
	fs.StringVar(&etcd.CAFile, "etcd-ca-cert-file", os.Getenv("SERVAL_ETCD_CA_CERT_FILE"), "CA of etcd's server certificate [$SERVAL_ETCD_CA_CERT_FILE]")
	fs.StringVar(&etcd.Username, "etcd-username", os.Getenv("SERVAL_ETCD_USERNAME"), "etcd user [$SERVAL_ETCD_USERNAME]")
	fs.StringVar(&etcd.Password, "etcd-password", os.Getenv("SERVAL_ETCD_PASSWORD"), "etcd password [$SERVAL_ETCD_PASSWORD]")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the Kubernetes API server (default: $KUBECONFIG, else the in-cluster service account)")
	fs.StringVar(&o.Identity, "identity", env("POD_NAME", host), "this replica's name in the Lease [$POD_NAME, else the host name]")
	fs.StringVar(&o.LeaseName, "lease-name", controllers.DefaultLeaseName, "name of the leader election Lease")
	fs.StringVar(&o.LeaseNamespace, "lease-namespace", env("POD_NAMESPACE", controllers.DefaultLeaseNamespace), "namespace of the leader election Lease [$POD_NAMESPACE]")
	fs.DurationVar(&o.GC.GracePeriod, "ipam-gc-grace-period", ipamgc.DefaultGracePeriod, "how long an address whose pod is gone (or a deleted node) waits before it is released")
	fs.DurationVar(&o.GC.ScanInterval, "ipam-gc-interval", ipamgc.DefaultScanInterval, "time between two scans of the IPAM state")
	fs.IntVar(&o.GC.Workers, "ipam-gc-workers", ipamgc.DefaultWorkers, "releases run in parallel")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", env("SERVAL_CONTROLLERS_METRICS_ADDR", ":9094"), "address of the Prometheus /metrics endpoint, empty for none [$SERVAL_CONTROLLERS_METRICS_ADDR]")
	fs.StringVar(&logLevel, "log-level", env("SERVAL_LOG_LEVEL", "info"), "debug, info, warn or error [$SERVAL_LOG_LEVEL]")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if showVersion {
		fmt.Println("serval-controllers", version.Version)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "serval-controllers: --log-level %q: %v\n", logLevel, err)
		return 2
	}
	if o.GC.GracePeriod <= 0 || o.GC.ScanInterval <= 0 || o.GC.Workers <= 0 {
		fmt.Fprintf(os.Stderr, "serval-controllers: --ipam-gc-grace-period (%s), --ipam-gc-interval (%s) and --ipam-gc-workers (%d) must be positive\n",
			o.GC.GracePeriod, o.GC.ScanInterval, o.GC.Workers)
		return 2
	}
	typ, err := datastore.ParseType(dsType)
	if err != nil {
		fmt.Fprintf(os.Stderr, "serval-controllers: --datastore-type: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o.Logger = log
	// client-go (informers, leader election) logs through klog: into the
	// same handler.
	klog.SetSlogLogger(log.With("source", "client-go"))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg, err := kube.RESTConfig(kubeconfig, "serval-controllers/"+version.Version)
	if err != nil {
		log.Error("Kubernetes client", "err", err)
		return 1
	}
	// The datastore's custom resources are JSON; Pods, Nodes and Leases
	// go in protobuf: smaller and faster to decode.
	dsCfg := rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	o.Kube, err = clientset.NewForConfig(cfg)
	if err != nil {
		log.Error("Kubernetes client", "err", err)
		return 1
	}

	var ds datastore.Interface
	switch typ {
	case datastore.TypeKubernetes:
		k, err := kubernetes.New(dsCfg, log)
		if err != nil {
			log.Error("connecting to the Kubernetes datastore", "err", err)
			return 1
		}
		ds = k
	default:
		etcd.Endpoints = strings.Split(endpoints, ",")
		etcd.DialTimeout = 5 * time.Second
		etcd.Logger = log
		e, err := datastore.NewEtcd(etcd)
		if err != nil {
			log.Error("connecting to the datastore", "endpoints", endpoints, "err", err)
			return 1
		}
		ds = e
	}
	defer ds.Close()
	o.IPAM = ipam.New(ds, ipam.Config{Logger: log})

	log.Info("serval-controllers starting", "version", version.Version, "identity", o.Identity)
	if err := controllers.Run(ctx, o); err != nil {
		log.Error("serval-controllers", "err", err)
		return 1
	}
	return 0
}
