package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/netconst"
)

// Sysctl sets kernel parameters by their /proc/sys path relative name
// ("net/ipv4/ip_forward"). ProcSysctl is the real one, NetnsSysctl runs it
// inside a network namespace, FakeSysctl records.
type Sysctl interface {
	Set(name, value string) error
}

// ProcSysctl writes under /proc/sys in the caller's network namespace.
type ProcSysctl struct{}

func (ProcSysctl) Set(name, value string) error {
	if err := checkSysctlName(name); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0o644)
}

// NetnsSysctl writes /proc/sys in the given network namespace: /proc/sys/net
// belongs to the namespace of the writing thread, so each write runs on a
// locked thread moved into the namespace, which is then thrown away rather
// than returned to the Go scheduler in the wrong namespace.
type NetnsSysctl struct{ NS netns.NsHandle }

func (s NetnsSysctl) Set(name, value string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(s.NS); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		errc <- ProcSysctl{}.Set(name, value)
	}()
	return <-errc
}

// ifaceManager applies the per-interface settings a workload veth needs on
// the host side (Calico's): proxy ARP so the workload's gateway
// 169.254.1.1 is answered at once, forwarding on, IPv6 router
// advertisements ignored; and IP forwarding host-wide.
type ifaceManager struct {
	s        Sysctl
	log      *slog.Logger
	prefixes []string

	ifaces  map[string]string // endpoint key → interface
	done    map[string]bool   // interfaces configured
	global  bool
	pending bool
	// noForwarding: FelixConfiguration ipForwarding is Disabled; the
	// host-wide forwarding switches are left as they are.
	noForwarding bool
}

func newIfaceManager(s Sysctl, log *slog.Logger) *ifaceManager {
	return &ifaceManager{s: s, log: log, ifaces: map[string]string{}, done: map[string]bool{}}
}

func (m *ifaceManager) setPrefixes(p []string) { m.prefixes = p }

// refresh makes the next apply set every interface's settings again (the
// interface refresh: someone may have changed them behind our back).
func (m *ifaceManager) refresh() {
	clear(m.done)
	m.global = false
}

func (m *ifaceManager) setWorkload(key, iface string) {
	if old := m.ifaces[key]; old != "" {
		// Re-apply on every update: a veth recreated under the same name
		// comes back with default settings.
		delete(m.done, old)
	}
	if iface == "" {
		delete(m.ifaces, key)
		return
	}
	m.ifaces[key] = iface
	delete(m.done, iface)
}

// hostSysctls are set once: without them nothing is routed at all.
var hostSysctls = [][2]string{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv6/conf/all/forwarding", "1"},
}

func ifaceSysctls(iface string) [][2]string {
	return [][2]string{
		{"net/ipv4/conf/" + iface + "/proxy_arp", "1"},
		{"net/ipv4/neigh/" + iface + "/proxy_delay", "0"},
		{"net/ipv4/conf/" + iface + "/forwarding", "1"},
		{"net/ipv6/conf/" + iface + "/forwarding", "1"},
		{"net/ipv6/conf/" + iface + "/accept_ra", "0"},
	}
}

func (m *ifaceManager) apply() error {
	var errs []error
	if !m.global && !m.noForwarding {
		ok := true
		for _, kv := range hostSysctls {
			if err := m.s.Set(kv[0], kv[1]); err != nil {
				if strings.HasPrefix(kv[0], "net/ipv6") && errors.Is(err, fs.ErrNotExist) {
					continue // IPv6 disabled on this host
				}
				ok = false
				errs = append(errs, fmt.Errorf("setting %s=%s: %w", kv[0], kv[1], err))
			}
		}
		m.global = ok
	}
	names := make([]string, 0, len(m.ifaces))
	for _, n := range m.ifaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, iface := range slices.Compact(names) {
		if m.done[iface] || !m.isWorkload(iface) {
			continue
		}
		if !netconst.ValidInterfaceName(iface) {
			// The agent validates endpoints before they get here; this
			// keeps a bad name from ever becoming a /proc/sys path.
			m.log.Error("not configuring a workload interface with an invalid name", "iface", iface)
			m.done[iface] = true // said once
			continue
		}
		ok := true
		for _, kv := range ifaceSysctls(iface) {
			err := m.s.Set(kv[0], kv[1])
			if err == nil {
				continue
			}
			if errors.Is(err, fs.ErrNotExist) {
				if strings.HasPrefix(kv[0], "net/ipv6") {
					continue // no IPv6 on the interface
				}
				// The veth is not there yet; the next Apply retries.
				m.log.Debug("workload interface not there yet", "iface", iface)
				ok = false
				break
			}
			ok = false
			errs = append(errs, fmt.Errorf("setting %s=%s: %w", kv[0], kv[1], err))
		}
		m.done[iface] = ok
	}
	return errors.Join(errs...)
}

func (m *ifaceManager) isWorkload(iface string) bool {
	for _, p := range m.prefixes {
		if strings.HasPrefix(iface, p) {
			return true
		}
	}
	return false
}

// FakeSysctl records writes; names listed in Missing fail as absent.
type FakeSysctl struct {
	Values  map[string]string
	Missing map[string]bool
	Writes  []string
}

// NewFakeSysctl returns an empty fake.
func NewFakeSysctl() *FakeSysctl {
	return &FakeSysctl{Values: map[string]string{}, Missing: map[string]bool{}}
}

func (f *FakeSysctl) Set(name, value string) error {
	if err := checkSysctlName(name); err != nil {
		return err
	}
	for m := range f.Missing {
		if strings.Contains(name, m) {
			return fmt.Errorf("fake sysctl %s: %w", name, fs.ErrNotExist)
		}
	}
	f.Values[name] = value
	f.Writes = append(f.Writes, name+"="+value)
	return nil
}
