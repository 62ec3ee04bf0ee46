package datastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/servalnet/serval/internal/api"
)

// Status is where a Syncer stands with its datastore.
type Status int

const (
	// WaitForDatastore: nothing has been read yet (the datastore has not
	// answered).
	WaitForDatastore Status = iota + 1
	// ResyncInProgress: the syncer is listing; what has been delivered
	// may be incomplete or stale.
	ResyncInProgress
	// InSync: everything delivered matches the datastore as of a recent
	// revision, and changes are being streamed.
	InSync
)

func (s Status) String() string {
	switch s {
	case WaitForDatastore:
		return "WaitForDatastore"
	case ResyncInProgress:
		return "ResyncInProgress"
	case InSync:
		return "InSync"
	}
	return "Unknown"
}

// Update is one change delivered by a Syncer. Type is Added, Modified or
// Deleted. For Deleted, Object is the resource as it was last stored when
// a watch saw the delete; when a resync finds a resource gone, the syncer
// no longer has it, and Object carries only its kind, name, namespace and
// last delivered resourceVersion. Revision is the datastore revision the
// change was seen at (a resync's list revision for changes found by
// listing). The syncer keeps no reference to Object: the consumer may
// keep it, or only what it needs of it.
type Update struct {
	Type     EventType
	Key      api.Key
	Object   api.Resource
	Revision int64
}

// SyncerCallbacks receives what a Syncer learns. Both methods are called
// from the syncer's one goroutine, never concurrently; a slow callback
// delays the syncer but never loses anything.
type SyncerCallbacks interface {
	OnStatus(Status)
	OnUpdates([]Update)
}

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	// Kinds to follow, e.g. "IPPool", "WorkloadEndpoint".
	Kinds []string
	// Namespace limits namespaced kinds to one namespace ("" is all).
	Namespace string
	// MinBackoff and MaxBackoff bound the wait between attempts after an
	// error (100ms and 10s when zero). The wait doubles with each failure
	// in a row, with ±20% jitter so that many agents losing one etcd do not
	// come back in step, and starts again from MinBackoff once the
	// datastore has been listed and watched without error for MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxBatch caps how many updates one OnUpdates call carries while
	// streaming (1000 when zero). A resync delivers its differences one
	// call per list page (about 1,000 resources) of each kind, when the
	// datastore lists by pages (Pager), else one call per kind.
	MaxBatch int
	// CheckInterval is how often a streaming Syncer asks a datastore that
	// has a Check method (etcd) whether it still answers (10s when zero,
	// never when negative). A watch whose members all went away does not
	// fail: the client retries it silently for ever, so without this check
	// the consumer would report in sync while the datastore is gone. A
	// failed check ends the stream; the Syncer lists again once the
	// datastore is back.
	CheckInterval time.Duration
	// Heartbeat, when set, is called from Run's goroutine at least every
	// HeartbeatInterval (1s when zero) while the syncer turns, idle or
	// not, and after each list page: serval-node's liveness.
	Heartbeat         func()
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
}

// checker is the optional liveness check of a datastore (Etcd.Check).
type checker interface {
	Check(ctx context.Context) error
}

// Syncer keeps a consumer in step with a set of kinds: it lists, delivers
// what it found, then watches from the list's revision. When a watch
// fails (history compacted, connection lost) it lists again and delivers
// only the differences from what it delivered before (Deleted for what
// vanished), so the consumer never sees a duplicate or misses a change.
//
// It lists page by page when the datastore can (Pager) and hands each
// page on as it comes, and it remembers only the revision of what it
// delivered, never the object: at 100,000 endpoints the consumer's own
// model is then the only copy, and the whole list is never in memory at
// once.
//
// One goroutine, the one in Run, owns all of its state.
type Syncer struct {
	ds  Interface
	cb  SyncerCallbacks
	cfg SyncerConfig
	log *slog.Logger

	status Status
	// seen is what the consumer has been told: per key, the revision of
	// the last object delivered (a new one is Modified, the same nothing).
	seen map[api.Key]seenEntry
	// pass marks the keys a resync's list found, to tell what vanished.
	pass uint64

	// backoff is the wait after a failure; now and sleep are the clock,
	// injected by tests.
	backoff *backoff.ExponentialBackOff
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) bool
}

// seenEntry is what a Syncer remembers of a delivered resource.
type seenEntry struct {
	rev  int64  // its resourceVersion (-1 when it is not a number)
	pass uint64 // the last resync pass that listed it
}

// NewSyncer returns a Syncer; Run starts it.
func NewSyncer(ds Interface, cb SyncerCallbacks, cfg SyncerConfig) *Syncer {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 10 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.Heartbeat == nil {
		cfg.Heartbeat = func() {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     cfg.MinBackoff,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         cfg.MaxBackoff,
	}
	b.Reset()
	s := &Syncer{ds: ds, cb: cb, cfg: cfg, log: log, seen: map[api.Key]seenEntry{},
		backoff: b, now: time.Now}
	s.sleep = s.beatingSleep
	return s
}

// taggedEvent is an event from one of the watches of one generation; a
// resync starts a new generation, and stragglers from the old are
// dropped.
type taggedEvent struct {
	gen  int
	kind string
	ev   Event
}

// Run syncs until ctx is done, then returns ctx's error. It returns at
// once with an error if a kind is unknown.
func (s *Syncer) Run(ctx context.Context) error {
	for _, k := range s.cfg.Kinds {
		if _, err := kindInfo(k); err != nil {
			return fmt.Errorf("syncer: %w", err)
		}
	}
	if len(s.cfg.Kinds) == 0 {
		return errors.New("syncer: no kinds to follow")
	}
	s.setStatus(WaitForDatastore)
	gen := 0
	for {
		revs, err := s.resync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait := s.backoff.NextBackOff()
			s.log.Warn("datastore resync failed; will retry", "err", err, "in", wait)
			if !s.sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		s.setStatus(InSync)
		gen++
		started := s.now()
		err = s.stream(ctx, gen, revs)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrCompacted) {
			// Not a fault: the consumer fell behind etcd's history. List
			// again at once.
			s.log.Info("watch history compacted; resyncing", "err", err)
			s.backoff.Reset()
			continue
		}
		// A resync that succeeded and a watch that then held for
		// MaxBackoff end the run of failures: this one starts a new run
		// from MinBackoff. A watch that fails sooner is the same outage
		// (a datastore that lists but cannot watch), and its wait keeps
		// growing, so a flapping datastore is not listed in full every
		// MinBackoff.
		if s.now().Sub(started) >= s.cfg.MaxBackoff {
			s.backoff.Reset()
		}
		wait := s.backoff.NextBackOff()
		s.log.Warn("datastore watch failed; resyncing", "err", err, "in", wait)
		if !s.sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// beatingSleep waits d, beating meanwhile; false when ctx ended first.
// It is the default of s.sleep, which tests replace with a clock of theirs.
func (s *Syncer) beatingSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	beat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer beat.Stop()
	for {
		s.cfg.Heartbeat()
		select {
		case <-t.C:
			return true
		case <-beat.C:
		case <-ctx.Done():
			return false
		}
	}
}

func (s *Syncer) setStatus(st Status) {
	if st == s.status {
		return
	}
	s.status = st
	s.cb.OnStatus(st)
}

// resync lists every kind and delivers the differences from what was
// delivered before. It returns the revision each kind was read at.
func (s *Syncer) resync(ctx context.Context) (map[string]int64, error) {
	if s.status == InSync {
		s.setStatus(ResyncInProgress)
	}
	revs := map[string]int64{}
	start, delivered := time.Now(), 0
	defer func() {
		if len(revs) == len(s.cfg.Kinds) {
			s.log.Info("datastore listed", "kinds", len(revs), "changes", delivered, "took", time.Since(start).Round(time.Millisecond))
		}
	}()
	lists := s.listAll(ctx)
	defer lists.stop()
	for i, kind := range s.cfg.Kinds {
		s.pass++
		// One page: what changed in it goes to the consumer at once, and
		// the page is garbage as soon as the consumer has taken what it
		// keeps.
		l := lists.kinds[i]
		for pg := range l.pages {
			// The datastore answered: leave WaitForDatastore on the first
			// page.
			s.setStatus(ResyncInProgress)
			s.cfg.Heartbeat()
			var updates []Update
			for _, obj := range pg.items {
				key := api.KeyOf(obj)
				if u, ok := s.apply(key, obj, pg.rev); ok {
					updates = append(updates, u)
				}
			}
			if len(updates) > 0 {
				delivered += len(updates)
				s.cb.OnUpdates(updates)
			}
		}
		if l.err != nil {
			return nil, l.err
		}
		rev := l.rev
		// The datastore answered: leave WaitForDatastore on the first
		// successful list.
		s.setStatus(ResyncInProgress)
		revs[kind] = rev
		var updates []Update
		for key, e := range s.seen {
			if key.Kind == kind && e.pass != s.pass {
				delete(s.seen, key)
				updates = append(updates, Update{Type: Deleted, Key: key, Object: tombstone(key, e.rev), Revision: rev})
			}
		}
		if len(updates) > 0 {
			delivered += len(updates)
			s.cb.OnUpdates(updates)
		}
	}
	return revs, nil
}

// listPage is one page of a kind's list.
type listPage struct {
	items []api.Resource
	rev   int64
}

// kindList is one kind being listed: its pages in order, then (once
// pages is closed) the list's revision or why it failed.
type kindList struct {
	pages chan listPage
	rev   int64
	err   error
}

// lists are the kinds of one resync, listed at once.
type lists struct {
	kinds  []*kindList
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// stop ends the listings the resync did not read to the end.
func (l *lists) stop() {
	l.cancel()
	l.done.Wait()
}

// listAll lists every kind at once, each from its own goroutine, and
// hands the pages over kind by kind in the order of cfg.Kinds: the round
// trips of a remote datastore (a kube-apiserver takes milliseconds to
// answer even an empty list) overlap, and a large kind is fetched and
// decoded while the consumer digests the one before. Each kind holds at
// most one page besides the one it is reading, so memory stays a few
// pages per kind.
func (s *Syncer) listAll(ctx context.Context) *lists {
	ctx, cancel := context.WithCancel(ctx)
	ls := &lists{cancel: cancel}
	for _, kind := range s.cfg.Kinds {
		l := &kindList{pages: make(chan listPage, 1)}
		ls.kinds = append(ls.kinds, l)
		send := func(items []api.Resource, rev int64) error {
			select {
			case l.pages <- listPage{items: items, rev: rev}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		opts := ListOptions{Kind: kind, Namespace: s.cfg.Namespace}
		ls.done.Go(func() {
			defer close(l.pages)
			if p, ok := s.ds.(Pager); ok {
				l.rev, l.err = p.ListPages(ctx, opts, send)
				return
			}
			res, err := s.ds.List(ctx, opts)
			if err != nil {
				l.err = err
				return
			}
			l.rev = res.Revision
			l.err = send(res.Items, res.Revision)
		})
	}
	return ls
}

// tombstone is the Object of a deletion found by a resync: the syncer
// keeps no copy of what it delivered, so only the key and revision.
func tombstone(key api.Key, rev int64) api.Resource {
	obj, err := api.New(key.Kind)
	if err != nil {
		return nil // cannot happen: the kind was listed
	}
	*obj.GetTypeMeta() = api.TypeMeta{Kind: key.Kind, APIVersion: api.APIVersion}
	m := obj.GetObjectMeta()
	m.Name, m.Namespace = key.Name, key.Namespace
	if rev >= 0 {
		m.ResourceVersion = strconv.FormatInt(rev, 10)
	}
	return obj
}

// apply records a put in seen and says what, if anything, the consumer
// must be told: Added for a key it does not know, Modified for a new
// version of one it does, nothing for the version it already has.
func (s *Syncer) apply(key api.Key, obj api.Resource, rev int64) (Update, bool) {
	v, err := strconv.ParseInt(obj.GetObjectMeta().ResourceVersion, 10, 64)
	if err != nil {
		v = -1 // not a revision: always news
	}
	old, known := s.seen[key]
	s.seen[key] = seenEntry{rev: v, pass: s.pass}
	if known && v >= 0 && old.rev == v {
		return Update{}, false
	}
	t := Added
	if known {
		t = Modified
	}
	return Update{Type: t, Key: key, Object: obj, Revision: rev}, true
}

// stream watches every kind from its list revision and delivers changes
// until a watch fails or ctx is done.
func (s *Syncer) stream(ctx context.Context, gen int, revs map[string]int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan taggedEvent)
	var watchers []Watcher
	defer func() {
		for _, w := range watchers {
			w.Stop()
		}
	}()
	for _, kind := range s.cfg.Kinds {
		w, err := s.ds.Watch(wctx, WatchOptions{Kind: kind, Namespace: s.cfg.Namespace, Revision: revs[kind]})
		if err != nil {
			return err
		}
		watchers = append(watchers, w)
		go forward(wctx, gen, kind, w, events)
	}
	checkFailed := make(chan error, 1)
	if c, ok := s.ds.(checker); ok && s.cfg.CheckInterval > 0 {
		go checkLoop(wctx, c, s.cfg.CheckInterval, checkFailed)
	}
	beat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer beat.Stop()
	for {
		s.cfg.Heartbeat()
		var te taggedEvent
		select {
		case te = <-events:
		case <-beat.C:
			continue
		case err := <-checkFailed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
		var updates []Update
		for {
			if te.gen == gen {
				if te.ev.Type == Error {
					// Deliver what came before the failure first.
					if len(updates) > 0 {
						s.cb.OnUpdates(updates)
					}
					return te.ev.Err
				}
				if u, ok := s.applyEvent(te.ev); ok {
					updates = append(updates, u)
				}
			}
			if len(updates) >= s.cfg.MaxBatch {
				break
			}
			// Batch whatever else is already waiting.
			more := false
			select {
			case te = <-events:
				more = true
			default:
			}
			if !more {
				break
			}
		}
		if len(updates) > 0 {
			s.cb.OnUpdates(updates)
		}
	}
}

// checkLoop checks the datastore every interval, in its own goroutine so
// that a check waiting on a dead datastore never delays events, and
// reports the first failure.
func checkLoop(ctx context.Context, c checker, interval time.Duration, failed chan<- error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		cctx, cancel := context.WithTimeout(ctx, interval)
		err := c.Check(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			failed <- fmt.Errorf("datastore stopped answering while watching: %w", err)
			return
		}
	}
}

func (s *Syncer) applyEvent(ev Event) (Update, bool) {
	key := api.KeyOf(ev.Object)
	if ev.Type == Deleted {
		if _, known := s.seen[key]; !known {
			return Update{}, false
		}
		delete(s.seen, key)
		return Update{Type: Deleted, Key: key, Object: ev.Object, Revision: ev.Revision}, true
	}
	// A watch's put is news to keep, whatever pass listed the key.
	u, ok := s.apply(key, ev.Object, ev.Revision)
	return u, ok
}

// forward copies one watcher's events into the syncer's one channel. A
// watcher that closes without an Error event is reported as one, so the
// syncer never waits on a watch that has ended.
func forward(ctx context.Context, gen int, kind string, w Watcher, out chan<- taggedEvent) {
	for ev := range w.Events() {
		select {
		case out <- taggedEvent{gen: gen, kind: kind, ev: ev}:
		case <-ctx.Done():
			return
		}
		if ev.Type == Error {
			return
		}
	}
	select {
	case out <- taggedEvent{gen: gen, kind: kind, ev: Event{Type: Error, Err: fmt.Errorf("watching %s: watch ended: %w", kind, ErrUnavailable)}}:
	case <-ctx.Done():
	}
}
