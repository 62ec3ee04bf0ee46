package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// pathRank is what makes two paths equal for ECMP: BGP's decision steps
// before the tie-breakers (local preference, AS path length, origin, MED).
// Paths that tie on all of them share the traffic, as BIRD's "merge paths"
// does for Calico.
type pathRank struct {
	localPref uint32
	asLen     int
	origin    uint8
	med       uint32
}

type learnedPath struct {
	rank    pathRank
	nexthop netip.Addr
}

func decodePath(p *api.Path) (learnedPath, bool) {
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return learnedPath{}, false
	}
	lp := learnedPath{rank: pathRank{localPref: 100}}
	for _, a := range attrs {
		switch v := a.(type) {
		case *bgp.PathAttributeNextHop:
			lp.nexthop, _ = netip.AddrFromSlice(v.Value)
		case *bgp.PathAttributeMpReachNLRI:
			lp.nexthop, _ = netip.AddrFromSlice(v.Nexthop)
		case *bgp.PathAttributeLocalPref:
			lp.rank.localPref = v.Value
		case *bgp.PathAttributeAsPath:
			for _, seg := range v.Value {
				lp.rank.asLen += seg.ASLen()
			}
		case *bgp.PathAttributeOrigin:
			lp.rank.origin = v.Value
		case *bgp.PathAttributeMultiExitDisc:
			lp.rank.med = v.Value
		}
	}
	lp.nexthop = lp.nexthop.Unmap()
	return lp, lp.nexthop.IsValid() && !lp.nexthop.IsUnspecified()
}

// learnedRoutes reads the global RIB: for every destination learned from
// a peer, the next hops of the best path and of the paths equal to it.
// Destinations this host originates itself are left out (their kernel
// routes belong to the dataplane: a blackhole for a block, link routes
// for workloads).
//
// With only set, it looks up those prefixes alone (a destination that is
// gone is simply absent from the result).
func learnedRoutes(ctx context.Context, b *server.BgpServer, only []netip.Prefix) (map[netip.Prefix][]netip.Addr, error) {
	out := map[netip.Prefix][]netip.Addr{}
	for _, fam := range []*api.Family{
		{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
		{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
	} {
		req := &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam, EnableOnlyBinary: true}
		if only != nil {
			for _, p := range only {
				if p.Addr().Is4() == (fam.Afi == api.Family_AFI_IP) {
					req.Prefixes = append(req.Prefixes, &api.TableLookupPrefix{Prefix: p.String(), Type: api.TableLookupPrefix_EXACT})
				}
			}
			if len(req.Prefixes) == 0 {
				continue
			}
		}
		gobgpGlobals.RLock()
		err := b.ListPath(ctx, req, func(d *api.Destination) {
			prefix, err := netip.ParsePrefix(d.Prefix)
			if err != nil {
				return
			}
			var best *learnedPath
			var nhs []netip.Addr
			for _, p := range d.Paths {
				if p.IsWithdraw || p.IsNexthopInvalid || p.Filtered {
					continue
				}
				if _, err := netip.ParseAddr(p.NeighborIp); err != nil {
					// A local path: this host originates the prefix.
					return
				}
				lp, ok := decodePath(p)
				if !ok {
					continue
				}
				if best == nil {
					// GoBGP lists a destination's paths best first.
					best = &lp
				} else if lp.rank != best.rank {
					continue
				}
				nhs = append(nhs, lp.nexthop)
			}
			if len(nhs) > 0 {
				slices.SortFunc(nhs, netip.Addr.Compare)
				out[prefix.Masked()] = slices.Compact(nhs)
			}
		})
		gobgpGlobals.RUnlock()
		if err != nil {
			return nil, fmt.Errorf("listing the %s RIB: %w", fam.Afi, err)
		}
	}
	return out, nil
}

func inAny(p netip.Prefix, pools []netip.Prefix) bool {
	for _, pool := range pools {
		if pool.Addr().Is4() == p.Addr().Is4() && pool.Bits() <= p.Bits() && pool.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// KernelState reports the last kernel sync: what it did and its error.
func (s *Speaker) KernelState(ctx context.Context) (KernelResult, error) {
	var res KernelResult
	var kerr error
	err := s.kdo(ctx, func() error { res, kerr = s.lastKernel, s.kernelErr; return nil })
	if err != nil {
		return res, err
	}
	return res, kerr
}

// Ping returns once the goroutine that programs learned routes into the
// kernel is free to answer: it runs one sync at a time, and a sync wedged
// in netlink keeps it from answering (liveness asks it, beside Status,
// which the BGP goroutine answers).
func (s *Speaker) Ping(ctx context.Context) error {
	return s.kdo(ctx, func() error { return nil })
}

// SyncKernel runs a kernel sync now and waits for it (tests and the
// daemon's "resync" use it).
func (s *Speaker) SyncKernel(ctx context.Context) error {
	return s.kdo(ctx, func() error { s.syncKernel(true); return s.kernelErr })
}

// PeerStatus is one session as `servalctl node status` shows it.
type PeerStatus struct {
	Address string   `json:"address"`
	Port    uint16   `json:"port"`
	Type    PeerType `json:"type"`
	// State is BIRD's protocol state word as calicoctl prints it: "up"
	// when established, "start" while trying, "down" when disabled.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Info is the BGP session state: Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established.
	Info             string `json:"info"`
	RoutesReceived   uint64 `json:"routesReceived"`
	RoutesAdvertised uint64 `json:"routesAdvertised"`
	ASN              uint32 `json:"asn"`
	Origin           string `json:"origin"`
}

func sessionInfo(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_IDLE:
		return "Idle"
	case api.PeerState_CONNECT:
		return "Connect"
	case api.PeerState_ACTIVE:
		return "Active"
	case api.PeerState_OPENSENT:
		return "OpenSent"
	case api.PeerState_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_ESTABLISHED:
		return "Established"
	}
	return "Unknown"
}

// Status lists the sessions, sorted by address.
func (s *Speaker) Status(ctx context.Context) ([]PeerStatus, error) {
	var out []PeerStatus
	err := s.do(ctx, func() error {
		if s.bgp == nil {
			return nil
		}
		return s.bgp.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(ap *api.Peer) {
			if ap.Conf == nil || ap.State == nil {
				return
			}
			addr, err := netip.ParseAddr(ap.Conf.NeighborAddress)
			if err != nil {
				return
			}
			p := s.peers[addr.Unmap()]
			ps := PeerStatus{Address: addr.String(), Port: p.Port, Type: p.Type, ASN: ap.Conf.PeerAsn, Origin: p.Origin, Info: sessionInfo(ap.State.SessionState)}
			switch {
			case ap.State.AdminState == api.PeerState_DOWN:
				ps.State = "down"
			case ap.State.SessionState == api.PeerState_ESTABLISHED:
				ps.State = "up"
			default:
				ps.State = "start"
			}
			s.mu.Lock()
			ps.Since = s.since[addr.String()]
			s.mu.Unlock()
			for _, af := range ap.AfiSafis {
				if af.State != nil {
					ps.RoutesReceived += af.State.Accepted
					// GoBGP counts the End-of-RIB marker it sends on every
					// graceful-restart session as an advertised path.
					if adv := af.State.Advertised; adv > 0 {
						ps.RoutesAdvertised += adv - 1
					}
				}
			}
			out = append(out, ps)
		})
	})
	sort.Slice(out, func(i, j int) bool {
		a, _ := netip.ParseAddr(out[i].Address)
		b, _ := netip.ParseAddr(out[j].Address)
		return a.Less(b)
	})
	return out, err
}

// NeighborConfig returns GoBGP's view of one neighbor's configuration
// (tests check graceful restart, passwords and reflector settings on it).
func (s *Speaker) NeighborConfig(ctx context.Context, addr netip.Addr) (*api.Peer, error) {
	var out *api.Peer
	err := s.do(ctx, func() error {
		if s.bgp == nil {
			return fmt.Errorf("no BGP server")
		}
		return s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) { out = p })
	})
	if err == nil && out == nil {
		err = fmt.Errorf("no neighbor %s", addr)
	}
	return out, err
}

// RIB returns the prefixes of the global RIB with their best-path next
// hops (the local origin shows as an invalid address), for tests and
// diagnostics.
func (s *Speaker) RIB(ctx context.Context) (map[netip.Prefix][]netip.Addr, error) {
	var out map[netip.Prefix][]netip.Addr
	err := s.do(ctx, func() error {
		if s.bgp == nil {
			return nil
		}
		var err error
		out, err = learnedRoutes(ctx, s.bgp, nil)
		return err
	})
	return out, err
}

// goBGPLogger sends GoBGP's logs to slog. GoBGP's Info is chatty (every
// FSM transition), so it goes to Debug; session changes are logged by the
// speaker itself.
type goBGPLogger struct {
	log   *slog.Logger
	level gobgplog.LogLevel
}

func newGoBGPLogger(l *slog.Logger) *goBGPLogger {
	return &goBGPLogger{log: l.With("gobgp", true), level: gobgplog.InfoLevel}
}

func (g *goBGPLogger) emit(lvl slog.Level, msg string, f gobgplog.Fields) {
	if !g.log.Enabled(context.Background(), lvl) {
		return
	}
	args := make([]any, 0, 2*len(f))
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, k, f[k])
	}
	g.log.Log(context.Background(), lvl, msg, args...)
}

func (g *goBGPLogger) Panic(msg string, f gobgplog.Fields) { g.emit(slog.LevelError, msg, f) }
func (g *goBGPLogger) Fatal(msg string, f gobgplog.Fields) { g.emit(slog.LevelError, msg, f) }
func (g *goBGPLogger) Error(msg string, f gobgplog.Fields) { g.emit(slog.LevelError, msg, f) }
func (g *goBGPLogger) Warn(msg string, f gobgplog.Fields)  { g.emit(slog.LevelWarn, msg, f) }
func (g *goBGPLogger) Info(msg string, f gobgplog.Fields)  { g.emit(slog.LevelDebug, msg, f) }
func (g *goBGPLogger) Debug(msg string, f gobgplog.Fields) { g.emit(slog.LevelDebug-4, msg, f) }
func (g *goBGPLogger) SetLevel(l gobgplog.LogLevel)        { g.level = l }
func (g *goBGPLogger) GetLevel() gobgplog.LogLevel         { return g.level }
