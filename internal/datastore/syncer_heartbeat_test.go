package datastore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/datastore"
)

// TestSyncerHeartbeat: a syncer beats while it idles in sync and while it
// backs off from a datastore that does not answer, so that liveness can
// tell an idle syncer from a stuck one.
func TestSyncerHeartbeat(t *testing.T) {
	tests := []struct {
		name string
		down bool
	}{
		{"idle, in sync", false},
		{"backing off from a datastore that is down", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &checkedMemory{Memory: datastore.NewMemory(nil)}
			ds.down.Store(tt.down)
			var beats atomic.Int64
			rec := &statusRecorder{}
			s := datastore.NewSyncer(ds, rec, datastore.SyncerConfig{
				Kinds: []string{"IPPool"}, CheckInterval: -1,
				MinBackoff: time.Second, MaxBackoff: time.Second, // longer than the test
				Heartbeat: func() { beats.Add(1) }, HeartbeatInterval: 10 * time.Millisecond,
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			time.Sleep(50 * time.Millisecond)
			before := beats.Load()
			time.Sleep(300 * time.Millisecond)
			cancel()
			<-done
			if n := beats.Load() - before; n < 10 {
				t.Errorf("%d beats in 300ms at a 10ms interval, want at least 10", n)
			}
			if got, want := rec.last() == datastore.InSync, !tt.down; got != want {
				t.Errorf("in sync %v, want %v", got, want)
			}
		})
	}
}
