package node

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestStatusSocketCreatedPrivate(t *testing.T) {
	// The widest umask: a socket's mode then comes from listenUnixPrivate alone.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "run", "node.sock")
	s, err := serveUnix(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if now := syscall.Umask(0); now != 0 {
		t.Errorf("umask left at %#o, want it restored to 0", now)
	}
}
