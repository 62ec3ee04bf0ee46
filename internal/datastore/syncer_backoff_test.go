package datastore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
)

// attempt is what the scripted datastore does on one resync: fail the
// list, or list and then fail the watch after it held for held.
type attempt struct {
	listFails bool
	held      time.Duration
}

// scriptedStore plays attempts in order, one per list, on a fake clock
// that only its watches and the Syncer's waits move.
type scriptedStore struct {
	*datastore.Memory
	mu    sync.Mutex
	clock time.Time
	steps []attempt
	cur   attempt
}

func (s *scriptedStore) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock
}

func (s *scriptedStore) advance(d time.Duration) {
	s.mu.Lock()
	s.clock = s.clock.Add(d)
	s.mu.Unlock()
}

// next starts the next attempt; past the script, lists fail.
func (s *scriptedStore) next() attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = attempt{listFails: true}
	if len(s.steps) > 0 {
		s.cur, s.steps = s.steps[0], s.steps[1:]
	}
	return s.cur
}

func (s *scriptedStore) List(ctx context.Context, opts datastore.ListOptions) (*datastore.ListResult, error) {
	if s.next().listFails {
		return nil, datastore.ErrUnavailable
	}
	return s.Memory.List(ctx, opts)
}

func (s *scriptedStore) ListPages(ctx context.Context, opts datastore.ListOptions, page func([]api.Resource, int64) error) (int64, error) {
	if s.next().listFails {
		return 0, datastore.ErrUnavailable
	}
	return s.Memory.ListPages(ctx, opts, page)
}

func (s *scriptedStore) Watch(ctx context.Context, opts datastore.WatchOptions) (datastore.Watcher, error) {
	s.mu.Lock()
	held := s.cur.held
	s.mu.Unlock()
	s.advance(held)
	return nil, errors.New("watch lost (scripted)")
}

// TestSyncerBackoff: the wait after a failure doubles up to MaxBackoff,
// keeps growing while the datastore lists but its watch fails at once,
// and starts again from MinBackoff after a resync whose watch held.
func TestSyncerBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 1600 * time.Millisecond
	script := []attempt{
		{listFails: true}, {listFails: true}, {listFails: true},
		{held: 0}, {held: hi / 2}, // lists, then loses the watch at once: the same outage
		{listFails: true},
		{held: time.Hour}, // a healthy hour: the next failure is a new outage
		{listFails: true}, {listFails: true},
		{held: hi}, // held for MaxBackoff exactly: reset
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 1600, 100, 200, 400, 100}
	for _, tc := range []struct {
		name   string
		jitter float64
	}{{"exact", 0}, {"jittered", 0.2}} {
		t.Run(tc.name, func(t *testing.T) {
			ds := &scriptedStore{Memory: datastore.NewMemory(nil), clock: time.Unix(0, 0), steps: append([]attempt(nil), script...)}
			s := datastore.NewSyncer(ds, &statusRecorder{}, datastore.SyncerConfig{
				Kinds: []string{dstest.ThingKind}, MinBackoff: lo, MaxBackoff: hi, CheckInterval: -1})
			datastore.SetSyncerJitter(s, tc.jitter)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got []time.Duration
			datastore.SetSyncerClock(s, ds.now, func(ctx context.Context, d time.Duration) bool {
				got = append(got, d)
				ds.advance(d)
				if len(got) == len(want) {
					cancel() // as a shutdown during the last wait
					return false
				}
				return true
			})
			if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want context.Canceled after %d waits (got %v)", err, len(want), got)
			}
			if len(got) != len(want) {
				t.Fatalf("waits %v, want %d of them", got, len(want))
			}
			for i, w := range want {
				w *= time.Millisecond
				low, high := time.Duration(float64(w)*(1-tc.jitter)), time.Duration(float64(w)*(1+tc.jitter))
				if got[i] < low || got[i] > high {
					t.Errorf("wait %d = %v, want %v ±%.0f%% (all: %v)", i+1, got[i], w, tc.jitter*100, got)
				}
			}
		})
	}
}
