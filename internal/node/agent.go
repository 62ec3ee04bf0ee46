package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/servalnet/serval/internal/addrdetect"
	"github.com/servalnet/serval/internal/admission"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/routing"
)

// Config is what serval-node is told on its command line or environment.
type Config struct {
	NodeName string
	// IPv4 and IPv6 are "autodetect", "none", or an address with its
	// prefix length ("172.17.8.101/24"). IPv4 defaults to autodetect,
	// IPv6 to none, as in Calico.
	IPv4, IPv6             string
	IPv4Method, IPv6Method string // addrdetect methods; "" is first-found
	ASNumber               string // "" keeps the Node's or the cluster's
	HealthListen           string // e.g. "127.0.0.1:9099"; "" disables
	MetricsListen          string // e.g. "127.0.0.1:9091"; "" disables
	StatusSocket           string // unix socket for `servalctl node status`; "" disables
	BGP                    bool   // run the embedded BGP speaker
	// HealthTimeouts overrides DefaultWorkerTimeout by worker name
	// (WorkerSyncer, ...); BGPGrace is how long a session may be down
	// before the node is not ready (DefaultBGPGrace when zero);
	// HeartbeatInterval is how often idle workers beat (tests shorten it).
	HealthTimeouts    map[string]time.Duration
	BGPGrace          time.Duration
	HeartbeatInterval time.Duration
	// HealthListenFixed and MetricsListenFixed say that the address was
	// given explicitly (flag or environment): FelixConfiguration's
	// health*/prometheusMetrics* fields then do not change it.
	HealthListenFixed, MetricsListenFixed bool
}

// Deps are the parts the agent drives, made by the caller so that tests can
// substitute them.
type Deps struct {
	Logger    *slog.Logger
	Datastore datastore.Interface
	// NewDataplane builds the dataplane with the hook the agent needs.
	NewDataplane func(afterApply func(dataplane.ApplyResult)) (*dataplane.Dataplane, error)
	Speaker      *routing.Speaker // nil when BGP is off
	Secrets      routing.SecretSource
	Host         addrdetect.Host
	Now          func() time.Time
	// Overlay runs the VXLAN overlay (see overlay.go); nil turns it off.
	Overlay *OverlayDeps
}

// Agent is serval-node: it registers the host, follows the datastore,
// programs the kernel and speaks BGP.
type Agent struct {
	cfg     Config
	d       Deps
	log     *slog.Logger
	Health  *Health
	Metrics *Metrics
	// Rejected lists the objects read from the datastore that failed
	// validation (see package admission).
	Rejected *admission.Registry
}

// New checks the configuration and returns an agent ready to Run.
func New(cfg Config, d Deps) (*Agent, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("node name is empty: give --nodename or set SERVAL_NODENAME")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Host == nil {
		d.Host = addrdetect.Netlink{}
	}
	a := &Agent{
		cfg: cfg, d: d, log: d.Logger.With("component", "node"),
		Health: NewHealth(d.Now), Metrics: NewMetrics(),
		Rejected: admission.NewRegistry(),
	}
	a.Rejected.OnChange(a.Metrics.setRejected)
	return a, nil
}

// Run works until ctx ends. It never flushes what it programmed when it
// stops: a restarted agent reads the kernel back and changes only what
// differs, so traffic and policy carry on while it is down.
func (a *Agent) Run(ctx context.Context) error {
	id, err := a.identity()
	if err != nil {
		return err
	}
	a.log.Info("starting", "node", id.Name, "ipv4", id.IPv4, "ipv6", id.IPv6)
	if err := a.register(ctx, id); err != nil {
		return err
	}

	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	self := newSelfServer(a)
	defer self.close()
	if err := self.start(); err != nil {
		return err
	}
	if a.cfg.StatusSocket != "" {
		s, err := serveUnix(a.cfg.StatusSocket, a.statusHandler())
		if err != nil {
			return fmt.Errorf("status socket: %w", err)
		}
		servers = append(servers, s)
	}

	dp, err := a.d.NewDataplane(a.afterApply)
	if err != nil {
		return fmt.Errorf("creating the dataplane: %w", err)
	}
	obs := &observer{Dataplane: dp, m: a.Metrics, weps: map[hoststate.EndpointID]bool{},
		heps: map[hoststate.EndpointID]bool{}, pols: map[hoststate.PolicyID]bool{}}
	w := a.registerWorkers()
	dp.SetHeartbeat(w.dataplane.Beat, a.heartbeatInterval())
	graph := &statusTap{Graph: calc.New(id.Name, obs, a.d.Logger), h: a.Health, w: w.calc}
	feed := newTee()
	feed.add(graph, calc.Kinds())
	var bgp *bgpLoop
	if a.d.Speaker != nil {
		bgp = newBGPLoop(id.Name, a.d.Speaker, a.d.Secrets, a.d.Logger, a.Metrics)
		bgp.health, bgp.beatDur = w.bgp, a.heartbeatInterval()
		feed.add(bgp, bgpKinds)
	}
	var ov *overlayLoop
	if a.d.Overlay != nil {
		ov = a.newOverlay(id.Name, w.overlay)
		feed.add(ov, overlayKinds)
	}
	// One syncer, one admission filter: what the graph and the BGP loop
	// (and the overlay) see has passed the same validation, and is reported once.
	filter := admission.NewFilter(feed, a.Rejected, a.d.Logger)
	syncer := datastore.NewSyncer(a.d.Datastore, filter, datastore.SyncerConfig{Kinds: feed.kinds(), Logger: a.d.Logger,
		Heartbeat: w.syncer.Beat, HeartbeatInterval: a.heartbeatInterval()})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.reportRejections(ctx, filter, id.Name); err != nil {
		return err
	}
	errc := make(chan error, 5)
	go func() { errc <- syncer.Run(ctx) }()
	go func() { errc <- dp.Run(ctx) }()
	go func() { errc <- self.follow(ctx) }()
	var bgpDone chan struct{}
	if bgp != nil {
		bgpDone = make(chan struct{})
		go func() { defer close(bgpDone); bgp.run(ctx) }()
		go a.probeSpeaker(ctx, w.speaker, min(speakerProbeInterval, a.timeout(WorkerBGPSpeaker)/3), a.timeout(WorkerBGPSpeaker))
	}
	if ov != nil {
		a.runOverlay(ctx, ov)
	}

	select {
	case <-ctx.Done():
		a.log.Info("stopping; the kernel keeps what was programmed")
	case err = <-errc:
		if ctx.Err() != nil {
			err = nil
		}
	}
	cancel()
	a.awaitBGPStop(bgpDone)
	return err
}

// bgpStopTimeout bounds how long a stopping agent waits for its BGP
// sessions to close.
const bgpStopTimeout = 10 * time.Second

// awaitBGPStop waits for the BGP loop to close its sessions. Returning
// before it would let the process exit with the sessions open: the peers
// would then see the connections drop without a Cease notification, take
// it for a restart and keep this host's routes for the whole
// graceful-restart time, long after the host stopped.
func (a *Agent) awaitBGPStop(done <-chan struct{}) {
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(bgpStopTimeout):
		a.log.Warn("BGP sessions did not close in time; peers keep this host's routes until their graceful-restart timer expires", "waited", bgpStopTimeout)
	}
}

func (a *Agent) afterApply(r dataplane.ApplyResult) {
	a.Metrics.ApplySeconds.Observe(r.Stats.Duration.Seconds())
	if r.Resync {
		a.Metrics.Resyncs.Inc()
	}
	if r.Err != nil {
		a.Metrics.Errors.WithLabelValues("dataplane").Inc()
		a.Health.SetProgrammed(r.Err)
		return
	}
	if r.InSync {
		a.Health.SetProgrammed(nil)
	}
	if r.Stats.Ops > 0 {
		// One line per transaction that changed something (none in a steady
		// state); bench/ times policy changes by this line, as Felix's
		// "Finished applying updates to dataplane".
		a.log.Info("dataplane committed", "ops", r.Stats.Ops, "elements", r.Stats.Elements, "took", r.Stats.Duration)
	}
	if r.Stats.Elements >= bigApplyElements {
		// A transaction this big (a cold start at scale) leaves tens of
		// MB of garbage (netlink messages, planned ops) and may have set
		// the collector's next goal at twice a heap that held them all;
		// collecting now sets it from what really stays, so the small
		// changes that follow do not grow the heap towards that goal.
		runtime.GC()
	}
}

// bigApplyElements is the size of a transaction after which the agent
// collects garbage at once.
const bigApplyElements = 20_000

// identity works out the host's addresses.
func (a *Agent) identity() (Identity, error) {
	id := Identity{Name: a.cfg.NodeName, ASNumber: a.cfg.ASNumber}
	var err error
	if id.IPv4, err = a.address(a.cfg.IPv4, "autodetect", a.cfg.IPv4Method, addrdetect.IPv4); err != nil {
		return id, err
	}
	if id.IPv6, err = a.address(a.cfg.IPv6, "none", a.cfg.IPv6Method, addrdetect.IPv6); err != nil {
		return id, err
	}
	return id, nil
}

func (a *Agent) address(v, def, method string, fam addrdetect.Family) (netip.Prefix, error) {
	if v == "" {
		v = def
	}
	switch v {
	case "none":
		return netip.Prefix{}, nil
	case "autodetect":
		m, err := addrdetect.ParseMethod(method)
		if err != nil {
			return netip.Prefix{}, err
		}
		p, err := addrdetect.Detect(a.d.Host, m, fam)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("detecting this host's IPv%d address: %w", fam, err)
		}
		return p, nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		addr, aerr := netip.ParseAddr(v)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("IPv%d address %q: want autodetect, none or an address like 172.17.8.101/24", fam, v)
		}
		p = netip.PrefixFrom(addr, addr.BitLen())
	}
	if (fam == addrdetect.IPv4) != p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("IPv%d address %q is of the other family", fam, v)
	}
	return p, nil
}

// register writes the Node, retrying while the datastore is not there yet
// (a host may boot before its datastore).
func (a *Agent) register(ctx context.Context, id Identity) error {
	backoff := 200 * time.Millisecond
	for {
		_, err := Register(ctx, a.d.Datastore, id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, datastore.ErrUnavailable) {
			return err
		}
		a.Metrics.Errors.WithLabelValues("datastore").Inc()
		a.log.Warn("datastore not available; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func serveTCP(addr string, h http.Handler) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return serve(l, h), nil
}

// serveUnix listens on a unix socket only root can use: it answers
// questions about this host's BGP sessions.
func serveUnix(path string, h http.Handler) (*http.Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	_ = os.Remove(path) // a socket left by a previous run
	l, err := listenUnixPrivate(path)
	if err != nil {
		return nil, err
	}
	return serve(l, h), nil
}

func serve(l net.Listener, h http.Handler) *http.Server {
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.Serve(l) }()
	return s
}

// observer counts what the graph sends the dataplane, for metrics.
type observer struct {
	*dataplane.Dataplane
	m          *Metrics
	weps, heps map[hoststate.EndpointID]bool
	pols       map[hoststate.PolicyID]bool
}

func (o *observer) count() {
	o.m.LocalEndpoints.Set(float64(len(o.weps) + len(o.heps)))
	o.m.ActivePolicies.Set(float64(len(o.pols)))
}

func (o *observer) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) {
	o.weps[ep.ID] = true
	o.count()
	o.Dataplane.OnWorkloadEndpointUpdate(ep)
}

func (o *observer) OnWorkloadEndpointRemove(id hoststate.EndpointID) {
	delete(o.weps, id)
	o.count()
	o.Dataplane.OnWorkloadEndpointRemove(id)
}

func (o *observer) OnHostEndpointUpdate(ep hoststate.HostEndpoint) {
	o.heps[ep.ID] = true
	o.count()
	o.Dataplane.OnHostEndpointUpdate(ep)
}

func (o *observer) OnHostEndpointRemove(id hoststate.EndpointID) {
	delete(o.heps, id)
	o.count()
	o.Dataplane.OnHostEndpointRemove(id)
}

func (o *observer) OnPolicyUpdate(p hoststate.Policy) {
	o.pols[p.ID] = true
	o.count()
	o.Dataplane.OnPolicyUpdate(p)
}

func (o *observer) OnPolicyRemove(id hoststate.PolicyID) {
	delete(o.pols, id)
	o.count()
	o.Dataplane.OnPolicyRemove(id)
}
