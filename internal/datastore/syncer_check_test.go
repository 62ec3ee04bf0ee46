package datastore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
)

// checkedMemory is a memory datastore with an etcd-like Check that the
// test switches off, as if every etcd member had gone: its watches stay
// open and silent, as etcd's client keeps them.
type checkedMemory struct {
	*datastore.Memory
	down atomic.Bool
}

func (m *checkedMemory) Check(ctx context.Context) error {
	if m.down.Load() {
		return datastore.ErrUnavailable
	}
	return nil
}

func (m *checkedMemory) List(ctx context.Context, opts datastore.ListOptions) (*datastore.ListResult, error) {
	if m.down.Load() {
		return nil, datastore.ErrUnavailable
	}
	return m.Memory.List(ctx, opts)
}

// ListPages fails too: the Syncer lists by pages when it can.
func (m *checkedMemory) ListPages(ctx context.Context, opts datastore.ListOptions, page func([]api.Resource, int64) error) (int64, error) {
	if m.down.Load() {
		return 0, datastore.ErrUnavailable
	}
	return m.Memory.ListPages(ctx, opts, page)
}

type statusRecorder struct {
	mu  sync.Mutex
	all []datastore.Status
}

func (r *statusRecorder) OnStatus(s datastore.Status) {
	r.mu.Lock()
	r.all = append(r.all, s)
	r.mu.Unlock()
}
func (r *statusRecorder) OnUpdates([]datastore.Update) {}
func (r *statusRecorder) last() datastore.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.all) == 0 {
		return 0
	}
	return r.all[len(r.all)-1]
}

// TestSyncerNoticesDeadDatastore: a datastore that stops answering while
// its watch stays open takes the Syncer out of InSync within
// CheckInterval, and back once it answers again.
func TestSyncerNoticesDeadDatastore(t *testing.T) {
	ds := &checkedMemory{Memory: datastore.NewMemory(nil)}
	rec := &statusRecorder{}
	s := datastore.NewSyncer(ds, rec, datastore.SyncerConfig{Kinds: []string{dstest.ThingKind},
		CheckInterval: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()
	wait := func(want datastore.Status, not bool) bool {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if (rec.last() == want) != not {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}
	if !wait(datastore.InSync, false) {
		t.Fatalf("never in sync: %v", rec.all)
	}
	ds.down.Store(true)
	if !wait(datastore.InSync, true) {
		t.Fatalf("still InSync with the datastore gone: %v", rec.all)
	}
	ds.down.Store(false)
	if !wait(datastore.InSync, false) {
		t.Fatalf("not back in sync after the datastore returned: %v", rec.all)
	}
}
