package cni

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/servalnet/serval/internal/netconst"
)

// workloadMTU picks the workload interface's MTU: the configuration's mtu
// when set (the user's word wins); else what serval-node wrote in the MTU
// file (the uplink's less the overhead of the encapsulation in use, kept
// current as the uplink changes); else the MTU of the host's default
// route's interface; else DefaultMTU.
func workloadMTU(c *NetConf, dp Dataplane, log *slog.Logger) int {
	if c.MTU != 0 {
		return c.MTU
	}
	path := c.MTUFile
	if path == "" {
		path = netconst.MTUFile
	}
	mtu, ferr := readMTUFile(path)
	if ferr == nil {
		return mtu
	}
	mtu, err := dp.HostMTU()
	if err != nil {
		log.Warn("using the default MTU", "mtu", DefaultMTU, "reason", err, "mtu_file", ferr)
		return DefaultMTU
	}
	log.Debug("no MTU file; using the host's", "mtu", mtu, "reason", ferr)
	return mtu
}

func readMTUFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(s)
	if err != nil || n < 68 || n > 65535 {
		return 0, fmt.Errorf("MTU file %s holds %q, not an MTU", path, s)
	}
	return n, nil
}
