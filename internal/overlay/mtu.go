package overlay

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// LinkLister is the part of a netlink handle UplinkMTU uses.
type LinkLister interface {
	LinkList() ([]netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

// UplinkMTU is the MTU of the interface that holds one of the host's
// addresses (the smallest when several do); with no such interface, the
// smallest MTU of the host's other up interfaces that are not Serval's
// own (loopback, workload veths, tunnel devices are left out).
func UplinkMTU(h LinkLister, host []netip.Addr, skipPrefix string) (int, error) {
	links, err := h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("listing links for the uplink MTU: %w", err)
	}
	best, fallback := 0, 0
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Name == DeviceV4 || a.Name == DeviceV6 || skipPrefix != "" && strings.HasPrefix(a.Name, skipPrefix) || a.MTU <= 0 {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue // the link went away meanwhile
		}
		for _, ad := range addrs {
			ip, _ := netip.AddrFromSlice(ad.IP)
			for _, want := range host {
				if ip.Unmap() == want && (best == 0 || a.MTU < best) {
					best = a.MTU
				}
			}
		}
		if len(addrs) > 0 && (fallback == 0 || a.MTU < fallback) {
			fallback = a.MTU
		}
	}
	if best > 0 {
		return best, nil
	}
	if fallback > 0 {
		return fallback, nil
	}
	return 0, fmt.Errorf("no interface holds the host's addresses %v", host)
}

// WorkloadMTU is what new workloads get: the smallest of the overlay's
// device MTUs in use, else the uplink's.
func (d Desired) WorkloadMTU(uplink int) int {
	m := uplink
	for _, v := range []int{d.MTU4, d.MTU6, d.MTUIPIP} {
		if v > 0 && (m == 0 || v < m) {
			m = v
		}
	}
	return m
}

// WriteMTUFile writes mtu to path atomically (the CNI plugin may read it
// at any moment); it does nothing when the file already says so.
func WriteMTUFile(path string, mtu int) error {
	want := strconv.Itoa(mtu) + "\n"
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing MTU file %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(want), 0o644); err != nil {
		return fmt.Errorf("writing MTU file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing MTU file %s: %w", path, err)
	}
	return nil
}

// ReadMTUFile reads what WriteMTUFile wrote (0 and an error when absent or
// not a number).
func ReadMTUFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 68 || n > 65535 {
		return 0, fmt.Errorf("MTU file %s holds %q, not an MTU", path, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// IPIPAvailable says whether the running kernel has IPIP (loaded, or
// built in), as /sys/module shows it.
func IPIPAvailable() bool {
	_, err := os.Stat("/sys/module/ipip")
	return err == nil
}
