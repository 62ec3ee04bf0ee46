package routing

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// maxDirty is how many changed prefixes a sync handles one by one; past
// it, reading the whole RIB and table once is cheaper (a session that
// comes up with its full table, the watch's initial dump).
const maxDirty = 2048

// kernelView is what the kernel goroutine needs of the owner's state.
type kernelView struct {
	bgp       *server.BgpServer
	program   []netip.Prefix
	protected []netip.Prefix
	blocks    []netip.Prefix
	// reach are the host routes to peers through their reachableBy
	// gateway.
	reach map[netip.Prefix][]netip.Addr
}

// publishView hands the kernel goroutine the current server and the
// parts of the Desired it programs from; when they changed, the next
// sync is a full one. It runs on the owner goroutine.
func (s *Speaker) publishView() {
	v := kernelView{bgp: s.bgp}
	if s.bgp != nil {
		v.program, v.protected, v.blocks = s.desired.ProgramPrefixes, s.desired.Protected, s.desired.OwnedBlocks
		for _, p := range s.desired.Peers {
			if p.ReachableBy.IsValid() {
				if v.reach == nil {
					v.reach = map[netip.Prefix][]netip.Addr{}
				}
				v.reach[netip.PrefixFrom(p.Address, p.Address.BitLen())] = []netip.Addr{p.ReachableBy}
			}
		}
	}
	s.mu.Lock()
	if !reflect.DeepEqual(v, s.view) {
		s.view, s.dirtyAll = v, true
	}
	s.mu.Unlock()
	s.kick()
}

// markPaths notes the prefixes of paths from a table event. It runs on
// GoBGP's watch goroutine and must stay cheap: the work is done later,
// once for a burst.
func (s *Speaker) markPaths(paths []*api.Path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirtyAll {
		return
	}
	for _, p := range paths {
		nlri, err := apiutil.GetNativeNlri(p)
		var prefix netip.Prefix
		if err == nil {
			prefix, err = netip.ParsePrefix(nlri.String())
		}
		if err != nil || len(s.dirty) >= maxDirty {
			s.dirty, s.dirtyAll = nil, true
			return
		}
		if s.dirty == nil {
			s.dirty = map[netip.Prefix]struct{}{}
		}
		s.dirty[prefix.Masked()] = struct{}{}
	}
}

// syncKernel programs what BGP learned into the kernel. It runs on the
// kernel goroutine after BGP events (merged), periodically (full), and
// after a failure (full). A full sync reads the whole RIB and the whole
// routing table, so anything changed behind our back is repaired; between
// them, only the prefixes events touched are looked up and written, so
// the work per event is proportional to what it changed.
func (s *Speaker) syncKernel(full bool) {
	s.mu.Lock()
	v, dirty := s.view, s.dirty
	full = full || s.dirtyAll || s.kernel == nil || s.kernel.known == nil || s.kernelErr != nil
	s.dirty, s.dirtyAll = nil, false
	s.mu.Unlock()
	if s.kernel == nil {
		return
	}
	if !full && len(dirty) == 0 {
		return
	}
	var only []netip.Prefix
	if !full {
		for p := range dirty {
			only = append(only, p)
		}
	}
	want := map[netip.Prefix][]netip.Addr{}
	if v.bgp != nil {
		learned, err := learnedRoutes(context.Background(), v.bgp, only)
		if err != nil {
			s.log.Warn("reading learned routes", "err", err)
			s.kernelErr = err
			s.scheduleRetry()
			return
		}
		overlapping := map[netip.Prefix]bool{}
		if !full {
			for _, p := range s.overlapping {
				overlapping[p] = true
			}
			for _, p := range only {
				delete(overlapping, p)
			}
		}
		for p, nhs := range learned {
			if takesOver(p, v.protected, v.blocks) {
				overlapping[p] = true
				continue
			}
			if s.cfg.ProgramOutsidePools || inAny(p, v.program) {
				want[p] = nhs
			}
		}
		for p, gw := range v.reach {
			if _, ok := dirty[p]; full || ok {
				want[p] = gw
			}
		}
		s.noteOverlapping(overlapping)
	} else {
		s.noteOverlapping(nil)
	}
	allowDelete := s.cfg.Now().Sub(s.startedAt) >= s.cfg.StartupHold
	if allowDelete {
		s.taught = nil
	} else {
		// What BGP taught during this life may go again when withdrawn;
		// only routes left by a previous life are held.
		if s.taught == nil {
			s.taught = map[netip.Prefix]bool{}
		}
		for p := range want {
			s.taught[p] = true
		}
	}
	var res KernelResult
	var err error
	if full {
		res, err = s.kernel.apply(want, allowDelete, s.taught)
	} else {
		res, err = s.kernel.applySome(only, want, allowDelete, s.taught)
		res = mergeResult(s.lastKernel, res, only)
	}
	res.Overlapping = s.overlapping
	s.lastKernel, s.kernelErr = res, err
	if res.Replaced > 0 || res.Deleted > 0 {
		s.log.Debug("kernel routes updated", "full", full, "replaced", res.Replaced, "deleted", res.Deleted, "shadowed", len(res.Shadowed))
	}
	if err != nil {
		s.log.Warn("programming learned routes", "err", err)
		s.scheduleRetry()
		return
	}
	if !allowDelete {
		// Come back when the hold ends to remove what was not relearned.
		s.scheduleAfter(s.cfg.StartupHold - s.cfg.Now().Sub(s.startedAt))
	}
}

// mergeResult folds a partial apply into the last result: the lists keep
// what they said of the prefixes it did not touch.
func mergeResult(last, part KernelResult, touched []netip.Prefix) KernelResult {
	keep := func(old, add []netip.Prefix) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range old {
			if !slices.Contains(touched, p) {
				out = append(out, p)
			}
		}
		out = append(out, add...)
		slices.SortFunc(out, comparePrefix)
		return out
	}
	part.Shadowed = keep(last.Shadowed, part.Shadowed)
	part.Unresolved = keep(last.Unresolved, part.Unresolved)
	return part
}

// noteOverlapping keeps and logs, when it changes, the set of learned
// prefixes refused for overlapping this host's own (Desired.Protected).
func (s *Speaker) noteOverlapping(set map[netip.Prefix]bool) {
	var ps []netip.Prefix
	for p := range set {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, comparePrefix)
	if slices.Equal(ps, s.overlapping) {
		return
	}
	s.overlapping = ps
	if len(ps) > 0 {
		s.log.Warn("learned routes not programmed: they overlap this host's blocks, workloads or addresses", "prefixes", ps)
	}
}

func (s *Speaker) scheduleRetry() { s.scheduleAfter(s.cfg.RetryInterval) }

// scheduleAfter asks for a full sync after d (a retry, the end of the
// startup hold).
func (s *Speaker) scheduleAfter(d time.Duration) {
	if s.retry != nil {
		s.retry.Stop()
	}
	s.retry = time.AfterFunc(d, func() {
		s.mu.Lock()
		s.dirtyAll = true
		s.mu.Unlock()
		s.kick()
	})
}
