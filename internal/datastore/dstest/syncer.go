package dstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// Recorder is a SyncerCallbacks that keeps everything it is told.
type Recorder struct {
	mu       sync.Mutex
	statuses []datastore.Status
	updates  []datastore.Update
}

func (r *Recorder) OnStatus(s datastore.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, s)
}

func (r *Recorder) OnUpdates(u []datastore.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u...)
}

// Statuses returns the statuses reported so far.
func (r *Recorder) Statuses() []datastore.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.statuses)
}

// Updates returns the updates delivered so far.
func (r *Recorder) Updates() []datastore.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

// Reset forgets the updates delivered so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = nil
}

// summary renders updates as "Added a,Modified ns1/b,..." sorted, for
// comparisons that do not depend on the order of kinds.
func summary(us []datastore.Update) string {
	var out []string
	for _, u := range us {
		k := u.Key.Name
		if u.Key.Namespace != "" {
			k = u.Key.Namespace + "/" + k
		}
		out = append(out, fmt.Sprintf("%v %s %s", u.Type, u.Key.Kind, k))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lastStatus(r *Recorder) datastore.Status {
	s := r.Statuses()
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// runSyncer starts a syncer on ds and returns a function that stops it
// and checks that it stopped.
func runSyncer(t *testing.T, ds datastore.Interface, rec *Recorder) func() {
	ctx, cancel := context.WithCancel(context.Background())
	sy := datastore.NewSyncer(ds, rec, datastore.SyncerConfig{
		Kinds:      []string{ThingKind, NSThingKind},
		MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	})
	done := make(chan error, 1)
	go func() { done <- sy.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Syncer.Run returned %v, want context.Canceled", err)
			}
		case <-time.After(timeout):
			t.Error("Syncer.Run did not return after its context was cancelled")
		}
	}
	var once sync.Once
	stopOnce := func() { once.Do(stop) }
	t.Cleanup(stopOnce)
	return stopOnce
}

func testSyncerInSync(t *testing.T, h Harness, s datastore.Interface) {
	mustCreate(t, s, NewThing("a", nil, ThingSpec{}))
	mustCreate(t, s, NewThing("b", nil, ThingSpec{}))
	mustCreate(t, s, NewNSThing("ns1", "c", nil, ThingSpec{}))
	rec := &Recorder{}
	stop := runSyncer(t, s, rec)
	waitFor(t, "InSync", func() bool { return lastStatus(rec) == datastore.InSync })
	want := []datastore.Status{datastore.WaitForDatastore, datastore.ResyncInProgress, datastore.InSync}
	if got := rec.Statuses(); !slices.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if got, want := summary(rec.Updates()), "Added TestNSThing ns1/c, Added TestThing a, Added TestThing b"; got != want {
		t.Errorf("initial updates = %s\nwant %s", got, want)
	}
	// Live changes stream through.
	rec.Reset()
	b := asThing(t, mustGet(t, s, thingKey("b")))
	b.Spec.Node = "n2"
	mustUpdate(t, s, b)
	if _, err := s.Delete(ctxFor(t), thingKey("a"), ""); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, NewNSThing("ns1", "d", nil, ThingSpec{}))
	waitFor(t, "3 live updates", func() bool { return len(rec.Updates()) >= 3 })
	if got, want := summary(rec.Updates()), "Added TestNSThing ns1/d, Deleted TestThing a, Modified TestThing b"; got != want {
		t.Errorf("live updates = %s\nwant %s", got, want)
	}
	for _, u := range rec.Updates() {
		if u.Object == nil || api.KeyOf(u.Object) != u.Key {
			t.Errorf("update %v %v carries object %v", u.Type, u.Key, u.Object)
		}
		if u.Key.Name == "b" && asThing(t, u.Object).Spec.Node != "n2" {
			t.Errorf("Modified b carries %s", jsonOf(u.Object))
		}
	}
	stop()
	if got := lastStatus(rec); got != datastore.InSync {
		t.Errorf("status after stop = %v", got)
	}
}

// gated wraps a datastore so that a test can hold the syncer between its
// list and its watch, or take the datastore away altogether.
type gated struct {
	datastore.Interface

	mu       sync.Mutex
	hold     chan struct{} // non-nil: Watch waits until it is closed
	down     bool          // List and Watch fail as if etcd were gone
	waiting  chan struct{} // a Watch call has started waiting
	errs     []error       // errors delivered by watches
	watchers []*gatedWatcher
}

func newGated(ds datastore.Interface) *gated {
	return &gated{Interface: ds, waiting: make(chan struct{}, 16)}
}

func (g *gated) holdWatches() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = make(chan struct{})
}

func (g *gated) releaseWatches() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
}

// setDown makes the datastore unreachable (true) or back (false). Taking
// it down also breaks every open watch.
func (g *gated) setDown(down bool) {
	g.mu.Lock()
	g.down = down
	ws := g.watchers
	if down {
		g.watchers = nil
	}
	g.mu.Unlock()
	if down {
		for _, w := range ws {
			w.fail(fmt.Errorf("test cut the connection: %w", datastore.ErrUnavailable))
		}
	}
}

func (g *gated) watchErrors() []error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.errs)
}

func (g *gated) List(ctx context.Context, opts datastore.ListOptions) (*datastore.ListResult, error) {
	g.mu.Lock()
	down := g.down
	g.mu.Unlock()
	if down {
		return nil, fmt.Errorf("listing %s: %w", opts.Kind, datastore.ErrUnavailable)
	}
	return g.Interface.List(ctx, opts)
}

func (g *gated) Watch(ctx context.Context, opts datastore.WatchOptions) (datastore.Watcher, error) {
	g.mu.Lock()
	hold, down := g.hold, g.down
	g.mu.Unlock()
	if down {
		return nil, fmt.Errorf("watching %s: %w", opts.Kind, datastore.ErrUnavailable)
	}
	if hold != nil {
		select {
		case g.waiting <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	inner, err := g.Interface.Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	w := &gatedWatcher{g: g, inner: inner, out: make(chan datastore.Event), stop: make(chan struct{}), done: make(chan struct{})}
	g.mu.Lock()
	g.watchers = append(g.watchers, w)
	g.mu.Unlock()
	go w.run()
	return w, nil
}

type gatedWatcher struct {
	g        *gated
	inner    datastore.Watcher
	out      chan datastore.Event
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	failMu   sync.Mutex
	failErr  error
}

func (w *gatedWatcher) Events() <-chan datastore.Event { return w.out }

func (w *gatedWatcher) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

func (w *gatedWatcher) fail(err error) {
	w.failMu.Lock()
	w.failErr = err
	w.failMu.Unlock()
	w.stopOnce.Do(func() { close(w.stop) })
}

func (w *gatedWatcher) run() {
	defer close(w.done)
	defer close(w.out)
	defer w.inner.Stop()
	for {
		select {
		case ev, ok := <-w.inner.Events():
			if !ok {
				return
			}
			if ev.Type == datastore.Error {
				w.g.mu.Lock()
				w.g.errs = append(w.g.errs, ev.Err)
				w.g.mu.Unlock()
			}
			select {
			case w.out <- ev:
			case <-w.stop:
				w.sendFailure()
				return
			}
		case <-w.stop:
			w.sendFailure()
			return
		}
	}
}

// sendFailure delivers the error of a cut connection, if that is why the
// watcher stops; the reader may already be gone, so do not wait long.
func (w *gatedWatcher) sendFailure() {
	w.failMu.Lock()
	err := w.failErr
	w.failMu.Unlock()
	if err == nil {
		return
	}
	select {
	case w.out <- datastore.Event{Type: datastore.Error, Err: err}:
	case <-time.After(time.Second):
	}
}

func testSyncerCompaction(t *testing.T, h Harness, s datastore.Interface) {
	for _, n := range []string{"a", "b", "c"} {
		mustCreate(t, s, NewThing(n, nil, ThingSpec{}))
	}
	mustCreate(t, s, NewNSThing("ns1", "x", nil, ThingSpec{}))
	g := newGated(s)
	g.holdWatches()
	rec := &Recorder{}
	stop := runSyncer(t, g, rec)
	waitFor(t, "InSync", func() bool { return lastStatus(rec) == datastore.InSync })
	select {
	case <-g.waiting:
	case <-time.After(timeout):
		t.Fatal("syncer never started watching")
	}
	if got, want := summary(rec.Updates()), "Added TestNSThing ns1/x, Added TestThing a, Added TestThing b, Added TestThing c"; got != want {
		t.Fatalf("initial updates = %s\nwant %s", got, want)
	}
	rec.Reset()

	// The syncer has listed but is not watching yet: change things behind
	// its back and compact them out of the history.
	ctx := ctxFor(t)
	if _, err := s.Delete(ctx, thingKey("a"), ""); err != nil {
		t.Fatal(err)
	}
	b := asThing(t, mustGet(t, s, thingKey("b")))
	b.Spec.Node = "moved"
	mustUpdate(t, s, b)
	mustCreate(t, s, NewThing("d", nil, ThingSpec{}))
	if _, err := s.Delete(ctx, nsKey("ns1", "x"), ""); err != nil {
		t.Fatal(err)
	}
	last := mustCreate(t, s, NewNSThing("ns1", "y", nil, ThingSpec{}))
	h.Compact(t, s, rvOf(t, last))
	g.releaseWatches()

	want := "Added TestNSThing ns1/y, Added TestThing d, Deleted TestNSThing ns1/x, Deleted TestThing a, Modified TestThing b"
	waitFor(t, "the resync's 5 updates", func() bool { return len(rec.Updates()) >= 5 })
	waitFor(t, "InSync again", func() bool {
		st := rec.Statuses()
		return len(st) >= 5 && st[len(st)-1] == datastore.InSync
	})
	if got := summary(rec.Updates()); got != want {
		t.Errorf("resync updates = %s\nwant %s", got, want)
	}
	wantStatuses := []datastore.Status{datastore.WaitForDatastore, datastore.ResyncInProgress, datastore.InSync, datastore.ResyncInProgress, datastore.InSync}
	if got := rec.Statuses(); !slices.Equal(got, wantStatuses) {
		t.Errorf("statuses = %v, want %v", got, wantStatuses)
	}
	sawCompacted := false
	for _, err := range g.watchErrors() {
		sawCompacted = sawCompacted || errors.Is(err, datastore.ErrCompacted)
	}
	if !sawCompacted {
		t.Errorf("the syncer's watch never reported ErrCompacted (errors: %v); the resync path was not exercised", g.watchErrors())
	}
	for _, u := range rec.Updates() {
		if u.Key.Name == "b" && asThing(t, u.Object).Spec.Node != "moved" {
			t.Errorf("Modified b carries %s", jsonOf(u.Object))
		}
		if u.Type == datastore.Deleted && u.Object == nil {
			t.Errorf("Deleted %v carries no object", u.Key)
		}
	}

	// Watching resumed from the new revision: one live change, once.
	rec.Reset()
	c := asThing(t, mustGet(t, s, thingKey("c")))
	c.Spec.Node = "live"
	mustUpdate(t, s, c)
	waitFor(t, "the live update", func() bool { return len(rec.Updates()) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if got, want := summary(rec.Updates()), "Modified TestThing c"; got != want {
		t.Errorf("after resync, live updates = %s, want %s", got, want)
	}
	stop()
}

func testSyncerDisconnect(t *testing.T, h Harness, s datastore.Interface) {
	mustCreate(t, s, NewThing("a", nil, ThingSpec{}))
	mustCreate(t, s, NewThing("b", nil, ThingSpec{}))
	g := newGated(s)
	rec := &Recorder{}
	stop := runSyncer(t, g, rec)
	waitFor(t, "InSync", func() bool { return lastStatus(rec) == datastore.InSync })
	waitFor(t, "initial updates", func() bool { return len(rec.Updates()) >= 2 })
	// Let the watches start before cutting them.
	waitFor(t, "watches open", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.watchers) == 2
	})
	rec.Reset()

	g.setDown(true)
	waitFor(t, "ResyncInProgress", func() bool { return lastStatus(rec) == datastore.ResyncInProgress })
	ctx := ctxFor(t)
	if _, err := s.Delete(ctx, thingKey("a"), ""); err != nil {
		t.Fatal(err)
	}
	b := asThing(t, mustGet(t, s, thingKey("b")))
	b.Spec.Node = "moved"
	mustUpdate(t, s, b)
	mustCreate(t, s, NewNSThing("ns1", "z", nil, ThingSpec{}))
	time.Sleep(50 * time.Millisecond) // a few failed attempts
	if got := rec.Updates(); len(got) != 0 {
		t.Errorf("updates while the datastore was down: %s", summary(got))
	}
	g.setDown(false)

	waitFor(t, "InSync again", func() bool { return lastStatus(rec) == datastore.InSync })
	waitFor(t, "3 updates", func() bool { return len(rec.Updates()) >= 3 })
	time.Sleep(100 * time.Millisecond)
	if got, want := summary(rec.Updates()), "Added TestNSThing ns1/z, Deleted TestThing a, Modified TestThing b"; got != want {
		t.Errorf("updates after reconnecting = %s\nwant %s", got, want)
	}
	stop()
}
