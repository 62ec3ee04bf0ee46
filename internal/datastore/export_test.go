package datastore

import (
	"context"
	"time"
)

// SetMemoryListPageSize makes the in-memory backend list in pages of n,
// for tests of page boundaries without thousands of objects.
func SetMemoryListPageSize(m *Memory, n int) {
	m.m.mu.Lock()
	defer m.m.mu.Unlock()
	m.m.pageSize = n
}

// Resync runs one resync of s, as Run does after a failed watch, for
// tests that check what it delivers without breaking a watch.
var Resync = (*Syncer).resync

// SetSyncerClock replaces s's clock: now for the time, sleep for every
// wait after a failure (it returns false to stop Run).
func SetSyncerClock(s *Syncer, now func() time.Time, sleep func(ctx context.Context, d time.Duration) bool) {
	s.now, s.sleep = now, sleep
}

// SetSyncerJitter sets the backoff's randomization factor (0.2 by
// default), 0 for exact waits.
func SetSyncerJitter(s *Syncer, f float64) { s.backoff.RandomizationFactor = f }
