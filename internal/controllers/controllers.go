package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/servalnet/serval/internal/controllers/ipamgc"
)

// Defaults of Options.
const (
	DefaultLeaseName      = "serval-controllers"
	DefaultLeaseNamespace = "kube-system"
	DefaultLeaseDuration  = 15 * time.Second
	DefaultRenewDeadline  = 10 * time.Second
	DefaultRetryPeriod    = 2 * time.Second
)

// Options configure Run. Kube, IPAM and Identity are required.
type Options struct {
	Kube kubernetes.Interface
	IPAM ipamgc.IPAM
	// Identity names this replica in the Lease (a pod name, a host name):
	// it must differ between replicas.
	Identity string
	// LeaseName and LeaseNamespace name the Lease (defaults
	// serval-controllers in kube-system).
	LeaseName, LeaseNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election
	// (defaults 15 s, 10 s, 2 s, client-go's usual figures).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// GC configures the IPAM garbage collector; its IPAM, Kube, Logger
	// and Metrics are filled in by Run.
	GC ipamgc.Config
	// MetricsAddr, when set, is where /metrics is served (":9094").
	MetricsAddr string
	// Registry receives the metrics (nil: a new one).
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// OnLeading, when set, is told when this replica starts (true) and
	// stops (false) leading (tests watch it).
	OnLeading func(bool)
}

// Run elects and, while this replica leads, runs the controllers, until
// ctx ends. It returns an error only when it cannot start (bad options,
// metrics address taken).
func Run(ctx context.Context, o Options) error {
	if o.Kube == nil || o.IPAM == nil || o.Identity == "" {
		return errors.New("serval-controllers: a Kubernetes client, an IPAM client and an identity are required")
	}
	if o.LeaseName == "" {
		o.LeaseName = DefaultLeaseName
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = DefaultLeaseNamespace
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	log := o.Logger.With("identity", o.Identity)
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "serval", Subsystem: "controllers", Name: "leader",
		Help: "1 while this replica holds the serval-controllers Lease and runs the controllers, else 0."})
	if err := o.Registry.Register(leader); err != nil {
		return fmt.Errorf("serval-controllers: registering metrics: %w", err)
	}
	metrics, err := ipamgc.NewMetrics(o.Registry)
	if err != nil {
		return fmt.Errorf("serval-controllers: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if o.MetricsAddr != "" {
		srv, _, err := serveMetrics(o.MetricsAddr, o.Registry, log, &wg)
		if err != nil {
			return err
		}
		defer srv.Close()
	}

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: o.LeaseName, Namespace: o.LeaseNamespace},
		Client:     o.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
	}
	for ctx.Err() == nil {
		// le.Run returns as soon as the Lease is lost, without waiting
		// for OnStartedLeading: wait for the controllers to stop before
		// standing again, so that one replica never runs two.
		// (A term whose callback starts only after le.Run returned has
		// an ended context and stops at once.)
		var mu sync.Mutex
		var term chan struct{}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: o.LeaseName, ReleaseOnCancel: true,
			LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					leader.Set(1)
					if o.OnLeading != nil {
						o.OnLeading(true)
					}
					log.Info("leading: starting the controllers", "lease", o.LeaseNamespace+"/"+o.LeaseName)
					done := make(chan struct{})
					defer close(done)
					mu.Lock()
					term = done
					mu.Unlock()
					runControllers(ctx, o, metrics, log)
				},
				OnStoppedLeading: func() {
					leader.Set(0)
					if o.OnLeading != nil {
						o.OnLeading(false)
					}
					log.Info("not leading", "lease", o.LeaseNamespace+"/"+o.LeaseName)
				},
				OnNewLeader: func(id string) {
					if id != o.Identity {
						log.Info("another replica leads", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("serval-controllers: leader election on Lease %s/%s: %w", o.LeaseNamespace, o.LeaseName, err)
		}
		le.Run(ctx) // returns when ctx ends or the Lease is lost
		mu.Lock()
		done := term
		mu.Unlock()
		if done != nil {
			<-done
		}
	}
	return nil
}

// runControllers runs every controller until ctx (the leadership) ends.
func runControllers(ctx context.Context, o Options, m *ipamgc.Metrics, log *slog.Logger) {
	cfg := o.GC
	cfg.IPAM, cfg.Kube, cfg.Logger, cfg.Metrics = o.IPAM, o.Kube, log, m
	gc, err := ipamgc.New(cfg)
	if err != nil {
		log.Error("cannot start the IPAM garbage collector", "err", err)
		return
	}
	if err := gc.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("IPAM garbage collector stopped", "err", err)
	}
}

// serveMetrics serves /metrics at addr and returns the server and the
// address it listens on.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger, wg *sync.WaitGroup) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("serval-controllers: metrics address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", addr, "err", err)
		}
	})
	log.Info("serving metrics", "addr", ln.Addr().String())
	return srv, ln.Addr().String(), nil
}
