package cni

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/servalnet/serval/internal/netconst"
)

// Dataplane is what the plugin asks of the kernel. NetlinkDataplane is the
// real one; tests of the plugin's logic use a fake.
type Dataplane interface {
	// HostMTU is the MTU of the interface of the host's default route.
	HostMTU() (int, error)
	// Setup creates and configures the workload's veth, addresses and
	// routes. On failure it removes what it created.
	Setup(s *LinkSpec) (*LinkInfo, error)
	// Teardown removes the host side of the veth (the kernel then removes
	// the workload side and the routes through it). Removing what is not
	// there is not an error.
	Teardown(hostVeth string) error
	// Check reports every way the attachment differs from what Setup makes.
	Check(s *LinkSpec) error
}

// LinkCreator is a Dataplane that can create the veth before the
// addresses are known, so that ADD creates it while IPAM runs. Setup with
// LinkSpec.Created then configures the veth CreateLink made. On failure
// CreateLink leaves nothing behind.
type LinkCreator interface {
	CreateLink(s *LinkSpec) error
}

// LinkSpec describes one workload attachment.
type LinkSpec struct {
	HostVeth string       // host-side name
	IfName   string       // workload-side name (CNI_IFNAME)
	Netns    string       // path of the workload's network namespace
	MTU      int          // of both ends
	Addrs    []netip.Addr // the workload's addresses
	// Created says that CreateLink made the veth in this command: Setup
	// configures it rather than replacing it as a stale one.
	Created bool
	// ContainerMAC is the workload end's MAC address. Creating the veth
	// sets it (a random locally administered address, as the kernel
	// would pick, when empty) so that it is known before Setup: ADD
	// writes the WorkloadEndpoint, which records it, while Setup runs.
	ContainerMAC string
}

// LinkInfo is what Setup made.
type LinkInfo struct {
	HostMAC      string
	ContainerMAC string
}

var (
	hostVethMAC, _ = net.ParseMAC(netconst.HostVethMAC)
	gatewayV4      = net.ParseIP(netconst.WorkloadGatewayIPv4)
	gatewayV6      = net.ParseIP(netconst.WorkloadGatewayIPv6)
)

// NetlinkDataplane programs the kernel over netlink. The host side is the
// network namespace the process runs in. The zero value is ready to use;
// ProcSys defaults to /proc/sys.
type NetlinkDataplane struct {
	Log     *slog.Logger
	ProcSys string
}

func (d *NetlinkDataplane) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func (d *NetlinkDataplane) sysctl(path, value string) error {
	root := d.ProcSys
	if root == "" {
		root = "/proc/sys"
	}
	p := filepath.Join(root, path)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s to %s: %w", p, value, err)
	}
	return nil
}

func (d *NetlinkDataplane) readSysctl(path string) (string, error) {
	root := d.ProcSys
	if root == "" {
		root = "/proc/sys"
	}
	b, err := os.ReadFile(filepath.Join(root, path))
	return strings.TrimSpace(string(b)), err
}

// retryDump repeats a netlink dump the kernel interrupted because the table
// changed under it, which happens when many workloads start at once.
func retryDump[T any](f func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 5 {
		out, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

// HostMTU returns the MTU of the interface of the IPv4 (else IPv6) default
// route, so that workloads do not send packets the host's uplink would
// have to fragment.
func (d *NetlinkDataplane) HostMTU() (int, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return 0, fmt.Errorf("listing the host's routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			idx := r.LinkIndex
			if idx == 0 && len(r.MultiPath) > 0 {
				idx = r.MultiPath[0].LinkIndex
			}
			if idx == 0 {
				continue
			}
			l, err := netlink.LinkByIndex(idx)
			if err != nil {
				return 0, fmt.Errorf("reading the default route's interface %d: %w", idx, err)
			}
			return l.Attrs().MTU, nil
		}
	}
	return 0, errors.New("the host has no default route to take the MTU from")
}

func hostPrefix(a netip.Addr) *net.IPNet {
	bits := 32
	if a.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}
}

func hasV6(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if a.Is6() {
			return true
		}
	}
	return false
}

func hasV4(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if a.Is4() {
			return true
		}
	}
	return false
}

// Setup builds the attachment:
//
//	host ns:      <HostVeth> ee:ee:ee:ee:ee:ee, up, proxy_arp=1, proxy_delay=0, forwarding=1
//	              <addr>/32 dev <HostVeth> scope link proto 80
//	workload ns:  <IfName> <addr>/32, up
//	              169.254.1.1 dev <IfName> scope link
//	              default via 169.254.1.1 dev <IfName>
//	              default via fe80::ecee:eeff:feee:eeee dev <IfName>   (IPv6)
//
// The veth is created in one request with its host end in the host
// namespace and its other end already in the workload's namespace under
// its final name, so there is never a half-moved interface to clean up.
func (d *NetlinkDataplane) Setup(s *LinkSpec) (info *LinkInfo, err error) {
	cns, err := netns.GetFromPath(s.Netns)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", s.Netns, err)
	}
	defer cns.Close()
	if !s.Created {
		if err := d.createLink(s, cns); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			if derr := d.Teardown(s.HostVeth); derr != nil {
				err = fmt.Errorf("%w (and removing the veth again failed: %v)", err, derr)
			}
		}
	}()

	host, err := netlink.LinkByName(s.HostVeth)
	if err != nil {
		return nil, fmt.Errorf("reading back host interface %s: %w", s.HostVeth, err)
	}
	if err := d.configureHostSide(s, host); err != nil {
		return nil, err
	}

	ch, err := netlink.NewHandleAt(cns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in %s: %w", s.Netns, err)
	}
	defer ch.Close()
	cl, err := ch.LinkByName(s.IfName)
	if err != nil {
		return nil, fmt.Errorf("finding %s in %s: %w", s.IfName, s.Netns, err)
	}
	if err := d.configureWorkloadSide(s, ch, cl); err != nil {
		return nil, err
	}

	for _, a := range s.Addrs {
		r := &netlink.Route{LinkIndex: host.Attrs().Index, Dst: hostPrefix(a), Scope: netlink.SCOPE_LINK, Protocol: netconst.RouteProtocol}
		if a.Is6() {
			r.Scope = netlink.SCOPE_UNIVERSE
		}
		if err := netlink.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("adding host route %s dev %s: %w", hostPrefix(a), s.HostVeth, err)
		}
	}
	return &LinkInfo{HostMAC: netconst.HostVethMAC, ContainerMAC: cl.Attrs().HardwareAddr.String()}, nil
}

// CreateLink implements LinkCreator: the veth of Setup, not yet
// configured (down, no address, no sysctl, no route).
func (d *NetlinkDataplane) CreateLink(s *LinkSpec) error {
	cns, err := netns.GetFromPath(s.Netns)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", s.Netns, err)
	}
	defer cns.Close()
	return d.createLink(s, cns)
}

func (d *NetlinkDataplane) createLink(s *LinkSpec, cns netns.NsHandle) error {
	// A host veth of this name is left over from an earlier attempt for
	// the same workload (the name is derived from its identity).
	if old, err := netlink.LinkByName(s.HostVeth); err == nil {
		d.log().Info("removing a stale host veth", "interface", s.HostVeth)
		if err := netlink.LinkDel(old); err != nil {
			return fmt.Errorf("removing stale interface %s: %w", s.HostVeth, err)
		}
	}
	if s.ContainerMAC == "" {
		s.ContainerMAC = randomMAC().String()
	}
	peerMAC, err := net.ParseMAC(s.ContainerMAC)
	if err != nil {
		return fmt.Errorf("creating veth %s: workload MAC address %q: %w", s.HostVeth, s.ContainerMAC, err)
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: s.HostVeth, MTU: s.MTU, HardwareAddr: hostVethMAC},
		PeerName:  s.IfName, PeerMTU: uint32(s.MTU), PeerNamespace: netlink.NsFd(int(cns)), PeerHardwareAddr: peerMAC,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating veth %s (host) / %s (in %s): an interface %s already exists in the workload's namespace: %w", s.HostVeth, s.IfName, s.Netns, s.IfName, err)
		}
		return fmt.Errorf("creating veth %s (host) / %s (in %s): %w", s.HostVeth, s.IfName, s.Netns, err)
	}
	return nil
}

// randomMAC is a random unicast, locally administered MAC address (what
// the kernel's eth_random_addr gives a veth that is not told one).
func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	_, _ = rand.Read(m) // crypto/rand's Read does not fail
	m[0] = m[0]&^0x01 | 0x02
	return m
}

func (d *NetlinkDataplane) configureHostSide(s *LinkSpec, host netlink.Link) error {
	n := s.HostVeth
	settings := []struct{ path, value string }{}
	if hasV4(s.Addrs) {
		settings = append(settings,
			// Answer the workload's ARP for 169.254.1.1 (and anything else)
			// with our MAC, at once: the workload has no other neighbour.
			struct{ path, value string }{"net/ipv4/conf/" + n + "/proxy_arp", "1"},
			struct{ path, value string }{"net/ipv4/neigh/" + n + "/proxy_delay", "0"},
			struct{ path, value string }{"net/ipv4/conf/" + n + "/forwarding", "1"},
		)
	}
	if hasV6(s.Addrs) {
		settings = append(settings,
			struct{ path, value string }{"net/ipv6/conf/" + n + "/disable_ipv6", "0"},
			struct{ path, value string }{"net/ipv6/conf/" + n + "/accept_ra", "0"},
			// The workload's IPv6 gateway is this interface's link-local
			// address; skipping DAD makes it usable as soon as the link is
			// up rather than a second or more later.
			struct{ path, value string }{"net/ipv6/conf/" + n + "/accept_dad", "0"},
			struct{ path, value string }{"net/ipv6/conf/" + n + "/forwarding", "1"},
		)
	}
	for _, st := range settings {
		if err := d.sysctl(st.path, st.value); err != nil {
			return fmt.Errorf("configuring host interface %s: %w", n, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bringing up host interface %s: %w", n, err)
	}
	return nil
}

func (d *NetlinkDataplane) configureWorkloadSide(s *LinkSpec, ch *netlink.Handle, cl netlink.Link) error {
	if hasV6(s.Addrs) {
		// Runtimes often create namespaces with IPv6 disabled.
		err := ns.WithNetNSPath(s.Netns, func(ns.NetNS) error {
			for _, p := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/" + s.IfName + "/disable_ipv6"} {
				if err := d.sysctl(p, "0"); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("enabling IPv6 in %s: %w", s.Netns, err)
		}
	}
	for _, a := range s.Addrs {
		addr := &netlink.Addr{IPNet: hostPrefix(a)}
		if a.Is6() {
			// The address is ours alone (IPAM says so): no need to wait for
			// duplicate detection before it can be used.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := ch.AddrAdd(cl, addr); err != nil {
			return fmt.Errorf("adding address %s to %s in %s: %w", addr.IPNet, s.IfName, s.Netns, err)
		}
	}
	if err := ch.LinkSetUp(cl); err != nil {
		return fmt.Errorf("bringing up %s in %s: %w", s.IfName, s.Netns, err)
	}
	idx := cl.Attrs().Index
	var routes []*netlink.Route
	if hasV4(s.Addrs) {
		routes = append(routes,
			&netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: gatewayV4, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK},
			&netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: gatewayV4})
	}
	if hasV6(s.Addrs) {
		routes = append(routes, &netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, Gw: gatewayV6})
	}
	for _, r := range routes {
		if err := ch.RouteReplace(r); err != nil {
			return fmt.Errorf("adding route %s in %s: %w", describeRoute(r, s.IfName), s.Netns, err)
		}
	}
	return nil
}

func describeRoute(r *netlink.Route, dev string) string {
	s := r.Dst.String()
	if ones, _ := r.Dst.Mask.Size(); ones == 0 {
		s = "default"
	}
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	s += " dev " + dev
	if r.Scope == netlink.SCOPE_LINK {
		s += " scope link"
	}
	return s
}

// Teardown deletes the host side of the veth.
func (d *NetlinkDataplane) Teardown(hostVeth string) error {
	l, err := netlink.LinkByName(hostVeth)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("looking up host interface %s: %w", hostVeth, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("deleting host interface %s: %w", hostVeth, err)
	}
	return nil
}

// Check compares the attachment with what Setup makes and reports every
// difference.
func (d *NetlinkDataplane) Check(s *LinkSpec) error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	done := func() error {
		if len(problems) == 0 {
			return nil
		}
		return errors.New(strings.Join(problems, "; "))
	}

	host, err := netlink.LinkByName(s.HostVeth)
	if err != nil {
		bad("host interface %s: %v", s.HostVeth, err)
		return done()
	}
	ha := host.Attrs()
	if host.Type() != "veth" {
		bad("host interface %s is a %s, not a veth", s.HostVeth, host.Type())
	}
	if ha.HardwareAddr.String() != netconst.HostVethMAC {
		bad("host interface %s has MAC %s, want %s", s.HostVeth, ha.HardwareAddr, netconst.HostVethMAC)
	}
	if ha.Flags&net.FlagUp == 0 {
		bad("host interface %s is down", s.HostVeth)
	}
	if hasV4(s.Addrs) {
		for _, p := range []string{"net/ipv4/conf/" + s.HostVeth + "/proxy_arp", "net/ipv4/conf/" + s.HostVeth + "/forwarding"} {
			if v, err := d.readSysctl(p); err != nil || v != "1" {
				bad("%s is %q, want 1", p, v)
			}
		}
		if v, err := d.readSysctl("net/ipv4/neigh/" + s.HostVeth + "/proxy_delay"); err != nil || v != "0" {
			bad("net/ipv4/neigh/%s/proxy_delay is %q, want 0", s.HostVeth, v)
		}
	}
	for _, a := range s.Addrs {
		fam := netlink.FAMILY_V4
		if a.Is6() {
			fam = netlink.FAMILY_V6
		}
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(fam, &netlink.Route{Dst: hostPrefix(a)}, netlink.RT_FILTER_DST)
		})
		found := false
		for _, r := range routes {
			found = found || (r.LinkIndex == ha.Index && r.Protocol == netconst.RouteProtocol)
		}
		if err != nil || !found {
			bad("no host route %s dev %s proto %d", hostPrefix(a), s.HostVeth, netconst.RouteProtocol)
		}
	}

	cns, err := netns.GetFromPath(s.Netns)
	if err != nil {
		bad("opening network namespace %s: %v", s.Netns, err)
		return done()
	}
	defer cns.Close()
	ch, err := netlink.NewHandleAt(cns)
	if err != nil {
		bad("opening netlink in %s: %v", s.Netns, err)
		return done()
	}
	defer ch.Close()
	cl, err := ch.LinkByName(s.IfName)
	if err != nil {
		bad("interface %s in %s: %v", s.IfName, s.Netns, err)
		return done()
	}
	if cl.Type() != "veth" {
		bad("%s in %s is a %s, not a veth", s.IfName, s.Netns, cl.Type())
	} else if cl.Attrs().ParentIndex != ha.Index || ha.ParentIndex != cl.Attrs().Index {
		// A veth's IFLA_LINK is its peer's index (in the peer's namespace).
		bad("%s in %s is not the peer of host interface %s", s.IfName, s.Netns, s.HostVeth)
	}
	if cl.Attrs().Flags&net.FlagUp == 0 {
		bad("%s in %s is down", s.IfName, s.Netns)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return ch.AddrList(cl, netlink.FAMILY_ALL) })
	if err != nil {
		bad("listing addresses of %s: %v", s.IfName, err)
	}
	for _, a := range s.Addrs {
		want := hostPrefix(a).String()
		found := false
		for _, have := range addrs {
			found = found || have.IPNet.String() == want
		}
		if !found {
			bad("%s in %s does not have address %s", s.IfName, s.Netns, want)
		}
	}
	routes, err := retryDump(func() ([]netlink.Route, error) { return ch.RouteList(cl, netlink.FAMILY_ALL) })
	if err != nil {
		bad("listing routes in %s: %v", s.Netns, err)
	}
	has := func(dst string, gw net.IP) bool {
		for _, r := range routes {
			rd := "default"
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					rd = r.Dst.String()
				}
			}
			if rd == dst && ((gw == nil && r.Gw == nil) || gw.Equal(r.Gw)) && (gw != nil || r.Scope == netlink.SCOPE_LINK) {
				return true
			}
		}
		return false
	}
	if hasV4(s.Addrs) {
		if !has(netconst.WorkloadGatewayIPv4+"/32", nil) {
			bad("no route %s dev %s scope link in %s", netconst.WorkloadGatewayIPv4, s.IfName, s.Netns)
		}
		if !has("default", gatewayV4) {
			bad("no route default via %s dev %s in %s", netconst.WorkloadGatewayIPv4, s.IfName, s.Netns)
		}
	}
	if hasV6(s.Addrs) {
		found := false
		for _, r := range routes {
			found = found || (r.Gw != nil && r.Gw.Equal(gatewayV6) && (r.Dst == nil || r.Dst.IP.Equal(net.IPv6zero)))
		}
		if !found {
			bad("no route default via %s dev %s in %s", netconst.WorkloadGatewayIPv6, s.IfName, s.Netns)
		}
	}
	return done()
}
