package node

import (
	"net"
	"sync"
	"syscall"
)

// umaskMu serialises the umask changes of listenUnixPrivate.
var umaskMu sync.Mutex

// listenUnixPrivate listens on a unix socket created with mode 0600: the
// umask is narrowed around bind, so there is no moment at which the socket
// exists with a wider mode (a chmod after listen leaves one, during which
// anyone could connect). The umask is process-wide; the agent calls this
// at start, before its workers create any file.
func listenUnixPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
