package cni

import (
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultIPAMLockFile serialises serval-ipam's allocations and releases on
// one host (Calico's IPAM plugin does the same). Workloads on one host
// allocate from the same few blocks; without the lock, concurrent ADDs
// race for the same block object in the datastore and most of them lose,
// back off and retry, which makes 20 pods starting together take seconds
// instead of a fraction of one. Hosts do not share the lock: across hosts
// the datastore's conditional writes keep allocations unique.
const DefaultIPAMLockFile = "/run/serval/ipam.lock"

// lockIPAM takes the host's IPAM lock and returns its release. It is best
// effort: if the lock file cannot be used, allocation still works (just
// slower under contention), so the failure is only logged.
func lockIPAM(path string, log *slog.Logger) (unlock func()) {
	unlock, _ = takeIPAMLock(path, log, true)
	return unlock
}

// tryLockIPAM takes the host's IPAM lock only if it is free; ok is false
// when another process holds it. Like lockIPAM, it "takes" a lock file it
// cannot use.
func tryLockIPAM(path string, log *slog.Logger) (unlock func(), ok bool) {
	return takeIPAMLock(path, log, false)
}

func takeIPAMLock(path string, log *slog.Logger, wait bool) (unlock func(), ok bool) {
	if path == "" {
		path = DefaultIPAMLockFile
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		log.Warn("not serialising IPAM on this host", "lock", path, "err", err)
		return func() {}, true
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		log.Warn("not serialising IPAM on this host", "lock", path, "err", err)
		return func() {}, true
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if !wait && err == unix.EWOULDBLOCK {
		_ = f.Close()
		return nil, false
	}
	if err != nil {
		_ = f.Close()
		log.Warn("not serialising IPAM on this host", "lock", path, "err", err)
		return func() {}, true
	}
	// Closing the file releases the lock; so does the process exiting.
	return func() { _ = f.Close() }, true
}
