package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/vishvananda/netlink"

	"github.com/servalnet/serval/internal/netconst"
)

// gobgpGlobals guards GoBGP's package-level route-selection options,
// which StartBgp writes and listing the RIB reads: with several speakers
// in one process (tests, a lab) they would race.
var gobgpGlobals sync.RWMutex

// ErrStopped is returned by calls on a stopped Speaker.
var ErrStopped = errors.New("routing: speaker stopped")

// Config is what a Speaker is built from. Only Logger is needed; the zero
// values of the rest are documented defaults.
type Config struct {
	Logger *slog.Logger
	// Netlink programs learned routes; nil leaves the kernel alone (a
	// speaker without a dataplane, such as a dedicated route reflector).
	Netlink Netlink
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// RouteProtocol marks the routes the speaker programs
	// (netconst.RouteProtocol by default).
	RouteProtocol int
	// ResyncInterval is how often the kernel is re-read and repaired even
	// without BGP events (default 60s).
	ResyncInterval time.Duration
	// RetryInterval is how soon a failed kernel write is retried (default 2s).
	RetryInterval time.Duration
	// StartupHold keeps routes of ours that BGP has not (yet) taught again
	// for this long after the speaker starts (routes it was taught since
	// the start and then lost are withdrawn at once), so that restarting
	// serval-node does not remove routes its peers are about to resend.
	// Zero holds nothing. serval-node uses the graceful-restart time.
	StartupHold time.Duration
	// ProgramOutsidePools also programs learned routes outside the IP
	// pools (for example a default route from a top-of-rack router).
	ProgramOutsidePools bool
	// MaxPrefixes is the most prefixes one peer may send (per address
	// family). A peer that sends more is cut off: GoBGP ends the session
	// with a Cease (maximum number of prefixes reached) and its routes go;
	// it is tried again later like any failed session. Zero means
	// DefaultMaxPrefixes; negative means no limit.
	MaxPrefixes int
}

// DefaultMaxPrefixes bounds what one BGP peer can make a host store and
// program. It is far above what a cluster's peers send (one route per
// block and per borrowed address; a 5,000-node cluster with two blocks a
// node sends 10,000 through a reflector only at its very largest), and
// far below a full Internet table sent by mistake.
const DefaultMaxPrefixes = 10000

// prefixWarnPct is where GoBGP warns before the limit (it logs once).
const prefixWarnPct = 80

func (s *Speaker) maxPrefixes() uint32 {
	switch {
	case s.cfg.MaxPrefixes == 0:
		return DefaultMaxPrefixes
	case s.cfg.MaxPrefixes < 0:
		return 0 // GoBGP: no limit
	}
	return uint32(s.cfg.MaxPrefixes)
}

// Speaker owns one embedded GoBGP server and makes it match a Desired
// configuration: sessions, originated paths, and the kernel routes learned
// from peers. One goroutine owns all of its state; the methods send it
// closures and wait, as GoBGP's own server does, so they are safe for
// concurrent use. The zero value is not usable; call NewSpeaker.
type Speaker struct {
	cfg     Config
	log     *slog.Logger
	ops     chan func()
	trigger chan struct{} // size 1: bursts of BGP events merge into one sync
	done    chan struct{}
	exited  chan struct{}
	stop    sync.Once

	// Owned by the run goroutine (the kernel goroutine owns kernel,
	// taught, lastKernel, kernelErr, retry and overlapping).
	bgp         *server.BgpServer
	watchCancel context.CancelFunc
	global      globalKey
	peers       map[netip.Addr]Peer
	paths       map[netip.Prefix]Advertisement
	policyKey   string
	filters     map[netip.Addr]PeerFilters // as last given to GoBGP
	desired     Desired
	kernel      *kernel
	startedAt   time.Time
	// taught holds, during the startup hold, every prefix BGP wanted in
	// the kernel since the start (see kernel.apply).
	taught     map[netip.Prefix]bool
	lastKernel KernelResult
	// overlapping are the learned prefixes last refused for overlapping
	// Desired.Protected.
	overlapping []netip.Prefix
	kernelErr   error
	retry       *time.Timer

	mu    sync.Mutex // guards since, view and the dirty set
	since map[string]time.Time
	// view is what the kernel goroutine works from, published by the
	// owner goroutine (publishView).
	view kernelView
	// dirty are the prefixes BGP events touched since the last kernel
	// sync; dirtyAll asks for a full one (too many, a session changed,
	// the configuration changed, a retry).
	dirty    map[netip.Prefix]struct{}
	dirtyAll bool

	kops    chan func() // closures for the kernel goroutine
	kexited chan struct{}
}

type globalKey struct {
	asn        uint32
	routerID   netip.Addr
	port       uint16
	listenAddr string
}

// NewSpeaker starts a speaker with no BGP server yet; the first Reconcile
// with an enabled Desired starts one.
func NewSpeaker(cfg Config) *Speaker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RouteProtocol == 0 {
		cfg.RouteProtocol = netconst.RouteProtocol
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 60 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 2 * time.Second
	}
	s := &Speaker{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "bgp"),
		ops:     make(chan func()),
		trigger: make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		peers:   map[netip.Addr]Peer{},
		paths:   map[netip.Prefix]Advertisement{},
		since:   map[string]time.Time{},
		kops:    make(chan func()),
		kexited: make(chan struct{}),
	}
	if cfg.Netlink != nil {
		s.kernel = &kernel{nl: cfg.Netlink, proto: netlink.RouteProtocol(cfg.RouteProtocol), log: s.log}
	}
	s.startedAt = cfg.Now()
	go s.run()
	go s.runKernel()
	return s
}

// do runs f on the owner goroutine and returns its error.
func (s *Speaker) do(ctx context.Context, f func() error) error { return s.runOn(ctx, s.ops, f) }

// kdo runs f on the kernel goroutine and returns its error.
func (s *Speaker) kdo(ctx context.Context, f func() error) error { return s.runOn(ctx, s.kops, f) }

// runOn sends f to the goroutine that reads ops and waits for its error.
func (s *Speaker) runOn(ctx context.Context, ops chan<- func(), f func() error) error {
	errc := make(chan error, 1)
	select {
	case ops <- func() { errc <- f() }:
	case <-s.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Speaker) kick() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// run is the owner goroutine: sessions, policies, originated paths and
// status. The kernel work is on runKernel's goroutine, so that a large
// RIB being programmed never holds up `servalctl node status` or a
// reconcile.
func (s *Speaker) run() {
	defer close(s.exited)
	for {
		select {
		case f := <-s.ops:
			f()
		case <-s.done:
			s.stopServer()
			s.publishView()
			return
		}
	}
}

// runKernel is the kernel goroutine: it programs what BGP events changed
// (merged through the size-1 trigger) and re-reads everything every
// ResyncInterval.
func (s *Speaker) runKernel() {
	defer close(s.kexited)
	tick := time.NewTicker(s.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case f := <-s.kops:
			f()
		case <-s.trigger:
			s.syncKernel(false)
		case <-tick.C:
			s.syncKernel(true)
		case <-s.done:
			if s.retry != nil {
				s.retry.Stop()
			}
			return
		}
	}
}

// Stop shuts the BGP server down (peers see the sessions close) and ends
// the speaker. Kernel routes are left in place on purpose: the peers keep
// ours during graceful restart, and we keep theirs, so a restart of
// serval-node does not interrupt traffic. It is idempotent.
func (s *Speaker) Stop() {
	s.stop.Do(func() { close(s.done) })
	<-s.exited
	<-s.kexited
}

func (s *Speaker) stopServer() {
	if s.bgp == nil {
		return
	}
	if s.watchCancel != nil {
		s.watchCancel()
	}
	s.bgp.Stop()
	s.bgp = nil
	s.peers = map[netip.Addr]Peer{}
	s.paths = map[netip.Prefix]Advertisement{}
	s.policyKey = ""
	s.filters = nil
	s.global = globalKey{}
}

// Reconcile makes the speaker match d: it starts, restarts (when the AS,
// router ID or listen socket change) or stops the BGP server, adds,
// removes and resets sessions whose configuration changed, and originates
// and withdraws paths. It returns the errors of the steps that failed; the
// others are applied, and a later Reconcile retries the rest.
func (s *Speaker) Reconcile(ctx context.Context, d Desired) error {
	return s.do(ctx, func() error { return s.reconcile(ctx, d) })
}

func (s *Speaker) reconcile(ctx context.Context, d Desired) error {
	s.desired = d
	if !d.Enabled {
		s.stopServer()
		s.publishView()
		return nil
	}
	var addrs []string
	for _, a := range d.ListenAddresses {
		addrs = append(addrs, a.String())
	}
	gk := globalKey{d.ASN, d.RouterID, d.ListenPort, fmt.Sprint(addrs)}
	if s.bgp != nil && gk != s.global {
		s.log.Info("BGP identity changed; restarting the BGP server", "asn", d.ASN, "routerID", d.RouterID, "port", d.ListenPort)
		s.stopServer()
	}
	if s.bgp == nil {
		if err := s.startServer(ctx, d, addrs); err != nil {
			return err
		}
		s.global = gk
	}
	var errs []error
	if err := s.reconcilePolicy(ctx, d); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, s.reconcilePeers(ctx, d)...)
	errs = append(errs, s.reconcilePaths(ctx, d)...)
	s.publishView()
	return errors.Join(errs...)
}

func (s *Speaker) startServer(ctx context.Context, d Desired, addrs []string) error {
	b := server.NewBgpServer(server.LoggerOption(newGoBGPLogger(s.log)))
	go b.Serve()
	port := int32(d.ListenPort)
	gobgpGlobals.Lock()
	err := b.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             d.ASN,
		RouterId:        d.RouterID.String(),
		ListenPort:      port,
		ListenAddresses: addrs,
	}})
	gobgpGlobals.Unlock()
	if err != nil {
		b.Stop()
		return fmt.Errorf("starting BGP (AS %d, router ID %s, port %d): %w", d.ASN, d.RouterID, d.ListenPort, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	err = b.WatchEvent(wctx, &api.WatchEventRequest{
		Peer: &api.WatchEventRequest_Peer{},
		// Best-path changes, and every path received after the import
		// policy (an equal-cost path that is not the best changes the
		// kernel's ECMP set without changing the best path).
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_BEST, Init: true},
			{Type: api.WatchEventRequest_Table_Filter_POST_POLICY},
		}},
	}, s.onEvent)
	if err != nil {
		cancel()
		b.Stop()
		return fmt.Errorf("watching BGP events: %w", err)
	}
	s.bgp, s.watchCancel = b, cancel
	s.log.Info("BGP server started", "asn", d.ASN, "routerID", d.RouterID, "port", d.ListenPort, "listen", addrs)
	return nil
}

// onEvent runs on GoBGP's watcher goroutine. It must not block: it notes
// the time of session state changes and asks the owner goroutine to sync.
func (s *Speaker) onEvent(ev *api.WatchEventResponse) {
	if pe := ev.GetPeer(); pe != nil && pe.Peer != nil && pe.Peer.State != nil {
		st := pe.Peer.State
		s.mu.Lock()
		s.since[st.NeighborAddress] = s.cfg.Now()
		// A session that comes or goes changes many routes at once, some
		// (equal-cost paths that were not the best) without a table event.
		s.dirtyAll = true
		s.mu.Unlock()
		s.log.Info("BGP session state", "peer", st.NeighborAddress, "state", sessionInfo(st.SessionState))
	}
	if te := ev.GetTable(); te != nil {
		s.markPaths(te.Paths)
	}
	s.kick()
}

func (s *Speaker) reconcilePeers(ctx context.Context, d Desired) []error {
	var errs []error
	want := map[netip.Addr]Peer{}
	for _, p := range d.Peers {
		want[p.Address] = p
	}
	for addr, have := range s.peers {
		// Filters are policies (reconcilePolicy): a change of them does
		// not reset the session.
		w, ok := want[addr]
		w.Filters, have.Filters = PeerFilters{}, PeerFilters{}
		if ok && reflect.DeepEqual(w, have) {
			continue
		}
		// Changed sessions are deleted and added again: most of a
		// session's parameters (AS, password, timers, capabilities) only
		// take effect when it is re-established anyway.
		if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("removing BGP peer %s: %w", addr, err))
			continue
		}
		delete(s.peers, addr)
		s.log.Info("BGP peer removed", "peer", addr)
	}
	for _, p := range d.Peers {
		if _, ok := s.peers[p.Address]; ok {
			continue
		}
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(p, d, s.maxPrefixes())}); err != nil {
			errs = append(errs, fmt.Errorf("adding BGP peer %s (%s): %w", p.Address, p.Origin, err))
			continue
		}
		s.peers[p.Address] = p
		s.mu.Lock()
		s.since[p.Address.String()] = s.cfg.Now()
		s.mu.Unlock()
		s.log.Info("BGP peer added", "peer", p.Address, "port", p.Port, "asn", p.ASN, "type", p.Type, "origin", p.Origin, "rrClient", p.RRClient)
	}
	return errs
}

func familyOf(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// toAPIPeer turns a Peer into GoBGP's neighbor configuration; maxPrefixes
// (0: none) limits what the peer may send.
func toAPIPeer(p Peer, d Desired, maxPrefixes uint32) *api.Peer {
	restart := uint32(p.RestartTime / time.Second)
	if restart == 0 {
		restart = uint32(DefaultRestartTime / time.Second)
	}
	if restart > 4095 { // the field is 12 bits in the capability
		restart = 4095
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.LocalASN,
			AuthPassword:    p.Password,
			Description:     string(p.Type) + " " + p.Origin,
			AllowOwnAsn:     p.AllowOwnAS,
		},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		GracefulRestart: &api.GracefulRestart{
			Enabled:     true,
			RestartTime: restart,
		},
		AfiSafis: []*api.AfiSafi{{
			Config:            &api.AfiSafiConfig{Family: familyOf(p.Address), Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		}},
		// After a reset of ours (export rules changed) the session comes
		// back at once rather than after GoBGP's default 30 s.
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5, IdleHoldTimeAfterReset: 1}},
	}
	if maxPrefixes > 0 {
		ap.AfiSafis[0].PrefixLimits = &api.PrefixLimit{Family: familyOf(p.Address), MaxPrefixes: maxPrefixes, ShutdownThresholdPct: prefixWarnPct}
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	// Between two Serval nodes only the one with the lower address
	// connects, as Calico's mesh does. GoBGP closes connections that
	// arrive while a session is idle and idles 5 s after every failed
	// attempt, so when both ends connect after a lost session (a host
	// back after a link failure) each can keep arriving while the other
	// idles, for a minute or more. Both ends compare the same two node
	// addresses, so exactly one of them is passive.
	if own := d.NodeIPv4; p.PeerNode != "" {
		if p.Address.Is6() {
			own = d.NodeIPv6
		}
		ap.Transport.PassiveMode = own.IsValid() && own.Compare(p.Address) > 0
	}
	if p.KeepaliveTime > 0 {
		k := uint64(p.KeepaliveTime / time.Second)
		if k == 0 {
			k = 1
		}
		ap.Timers.Config.KeepaliveInterval = k
		ap.Timers.Config.HoldTime = 3 * k
	}
	localAS := p.LocalASN
	if localAS == 0 {
		localAS = d.ASN
	}
	if p.TTLSecurityHops > 0 {
		// GTSM (RFC 5082): send with TTL 255, accept only what arrives
		// having crossed at most the allowed number of hops.
		ap.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(p.TTLSecurityHops))}
	} else if p.ASN != localAS {
		// eBGP to a router that is not on a shared link (reached through
		// reachableBy or a routed fabric) needs more than TTL 1.
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.RRClient && d.ClusterID != "" {
		ap.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: d.ClusterID}
	}
	return ap
}

func (s *Speaker) reconcilePaths(ctx context.Context, d Desired) []error {
	var errs []error
	want := map[netip.Prefix]Advertisement{}
	for _, a := range d.Advertise {
		want[a.Prefix] = a
	}
	for p, have := range s.paths {
		if _, ok := want[p]; ok {
			continue
		}
		path, err := buildPath(have, true)
		if err == nil {
			err = s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: familyOf(p.Addr()), Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s: %w", p, err))
			continue
		}
		delete(s.paths, p)
	}
	for _, a := range d.Advertise {
		if have, ok := s.paths[a.Prefix]; ok && slices.Equal(have.Communities, a.Communities) {
			continue
		}
		// Adding a path for a prefix we already originate replaces it
		// (same source, same NLRI), so a change of communities does not
		// withdraw the route in between.
		path, err := buildPath(a, false)
		if err == nil {
			_, err = s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertising %s: %w", a.Prefix, err))
			continue
		}
		s.paths[a.Prefix] = a
	}
	return errs
}

// buildPath makes the BGP path for an advertisement. The next hop is left
// unspecified so that GoBGP fills in the session's local address, which is
// right for every session whatever its source address.
func buildPath(a Advertisement, withdraw bool) (*api.Path, error) {
	var nlri bgp.AddrPrefixInterface
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if a.Prefix.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(a.Prefix.Bits()), a.Prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop("0.0.0.0"))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(a.Prefix.Bits()), a.Prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{nlri}))
	}
	var std []uint32
	var large []*bgp.LargeCommunity
	for _, v := range a.Communities {
		c, err := parseCommunity(v)
		if err != nil {
			return nil, fmt.Errorf("community %q: %w", v, err)
		}
		if c.large {
			large = append(large, bgp.NewLargeCommunity(c.a, c.b, c.c))
		} else {
			std = append(std, c.a<<16|c.b)
		}
	}
	if len(std) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(std))
	}
	if len(large) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	return apiutil.NewPath(nlri, withdraw, attrs, time.Now())
}
