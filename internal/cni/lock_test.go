package cni

import (
	"log/slog"
	"path/filepath"
	"testing"
)

// TestTryLockIPAM: trying the host's IPAM lock fails while it is held
// (flock excludes another open file description, as another process's
// would be) and succeeds once it is released.
func TestTryLockIPAM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.lock")
	log := slog.New(slog.DiscardHandler)
	unlock := lockIPAM(path, log)
	if u, ok := tryLockIPAM(path, log); ok {
		u()
		t.Fatal("tryLockIPAM took the lock while it was held")
	}
	unlock()
	u, ok := tryLockIPAM(path, log)
	if !ok {
		t.Fatal("tryLockIPAM failed on a free lock")
	}
	if u2, ok := tryLockIPAM(path, log); ok {
		u2()
		t.Error("tryLockIPAM took the lock twice")
	}
	u()
}
