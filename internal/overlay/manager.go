package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Handle is the part of a netlink handle the manager uses; *netlink.Handle
// implements it (netlink.NewHandleAt for another namespace).
type Handle interface {
	LinkByName(name string) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	LinkSetMTU(link netlink.Link, mtu int) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
	NeighSet(neigh *netlink.Neigh) error
	NeighDel(neigh *netlink.Neigh) error
}

// Manager programs a Desired into the kernel. Apply reads back what is
// there and changes only what differs, so it is both the incremental path
// and the periodic resync; it owns the two devices by name, the routes of
// RouteProtocol, and the permanent neighbour and FDB entries on its devices.
type Manager struct {
	h   Handle
	log *slog.Logger
}

// NewManager returns a manager over h.
func NewManager(h Handle, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{h: h, log: log}
}

// Apply makes the kernel match d; every difference is attempted and the
// errors are joined.
func (m *Manager) Apply(d Desired) error {
	var errs []error
	links := map[string]netlink.Link{}
	want := map[string]bool{}
	for _, dv := range d.Devices {
		want[dv.Name] = true
		l, err := m.device(dv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		links[dv.Name] = l
	}
	for _, name := range []string{DeviceV4, DeviceV6} {
		if want[name] {
			continue
		}
		if l, err := m.h.LinkByName(name); err == nil {
			if err := m.h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("deleting unwanted device %s: %w", name, err))
			}
		}
	}
	if err := m.routes(d.Routes, links); err != nil {
		errs = append(errs, err)
	}
	for _, dv := range d.Devices {
		l, ok := links[dv.Name]
		if !ok || dv.IPIP {
			continue
		}
		if err := m.neighbours(l, dv, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// device makes one VXLAN device as wanted: recreated when its identity
// (VNI, port, local address, MAC) differs, since the kernel cannot change
// those in place; MTU, state and address are fixed in place.
func (m *Manager) device(dv Device) (netlink.Link, error) {
	if dv.IPIP {
		return m.ipipDevice(dv)
	}
	l, err := m.h.LinkByName(dv.Name)
	if err == nil {
		vx, ok := l.(*netlink.Vxlan)
		local, _ := netip.AddrFromSlice(srcOf(vx))
		if !ok || vx.VxlanId != dv.VNI || vx.Port != dv.Port || local.Unmap() != dv.Local ||
			!bytes.Equal(vx.HardwareAddr, dv.MAC) || vx.Learning {
			m.log.Info("recreating VXLAN device", "device", dv.Name)
			if err := m.h.LinkDel(l); err != nil {
				return nil, fmt.Errorf("deleting device %s to recreate it: %w", dv.Name, err)
			}
			l = nil
		}
	} else {
		l = nil
	}
	if l == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: dv.Name, MTU: dv.MTU, HardwareAddr: dv.MAC},
			VxlanId:   dv.VNI, Port: dv.Port, SrcAddr: net.IP(dv.Local.AsSlice()), Learning: false,
		}
		if err := m.h.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("creating VXLAN device %s (vni %d, port %d): %w", dv.Name, dv.VNI, dv.Port, err)
		}
		if l, err = m.h.LinkByName(dv.Name); err != nil {
			return nil, fmt.Errorf("reading back device %s: %w", dv.Name, err)
		}
	}
	return l, m.tune(l, dv)
}

// ipipDevice makes sure tunl0 exists (creating it loads the module where
// it is one) and tunes it. It is never deleted: the kernel owns it.
func (m *Manager) ipipDevice(dv Device) (netlink.Link, error) {
	l, err := m.h.LinkByName(dv.Name)
	if err != nil {
		if err := m.h.LinkAdd(&netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: dv.Name, MTU: dv.MTU}}); err != nil {
			return nil, fmt.Errorf("creating IPIP device %s: %w", dv.Name, err)
		}
		if l, err = m.h.LinkByName(dv.Name); err != nil {
			return nil, fmt.Errorf("reading back device %s: %w", dv.Name, err)
		}
	}
	return l, m.tune(l, dv)
}

// tune sets a device's MTU, state and tunnel address.
func (m *Manager) tune(l netlink.Link, dv Device) error {
	if l.Attrs().MTU != dv.MTU {
		if err := m.h.LinkSetMTU(l, dv.MTU); err != nil {
			return fmt.Errorf("setting MTU %d on %s: %w", dv.MTU, dv.Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := m.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("bringing %s up: %w", dv.Name, err)
		}
	}
	family, bits := netlink.FAMILY_V4, 32
	if dv.IPv6 {
		family, bits = netlink.FAMILY_V6, 128
	}
	addrs, err := m.h.AddrList(l, family)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", dv.Name, err)
	}
	has := false
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		switch {
		case ip == dv.Tunnel && ones == bits:
			has = true
		case ip.IsLinkLocalUnicast():
		default:
			if err := m.h.AddrDel(l, &a); err != nil {
				return fmt.Errorf("removing stale address %s from %s: %w", ip, dv.Name, err)
			}
		}
	}
	if !has {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(dv.Tunnel.AsSlice()), Mask: net.CIDRMask(bits, bits)}}
		if err := m.h.AddrReplace(l, a); err != nil {
			return fmt.Errorf("adding tunnel address %s to %s: %w", dv.Tunnel, dv.Name, err)
		}
	}
	return nil
}

func srcOf(vx *netlink.Vxlan) net.IP {
	if vx == nil {
		return nil
	}
	return vx.SrcAddr
}

// same says whether a kernel route already is the wanted one: same type,
// same gateway, and for a tunnel route the same device (a native route's
// device is the kernel's choice).
func same(want, have *netlink.Route) bool {
	if want.Type != have.Type || !want.Gw.Equal(have.Gw) {
		return false
	}
	return want.LinkIndex == 0 || want.LinkIndex == have.LinkIndex
}

func (m *Manager) routes(want []Route, links map[string]netlink.Link) error {
	var errs []error
	desired := map[string]*netlink.Route{}
	var order []string // want's order, so that what is done is reproducible
	for _, r := range want {
		nr := &netlink.Route{
			Dst:      &net.IPNet{IP: net.IP(r.Dst.Addr().AsSlice()), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
			Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST,
		}
		switch r.Kind {
		case ViaTunnel, ViaIPIP:
			l, ok := links[r.Dev]
			if !ok {
				continue // the device failed; its error is reported
			}
			nr.Gw, nr.LinkIndex, nr.Flags = net.IP(r.Via.AsSlice()), l.Attrs().Index, int(netlink.FLAG_ONLINK)
		case Native:
			nr.Gw = net.IP(r.Via.AsSlice())
		default:
			nr.Type = unix.RTN_UNREACHABLE
		}
		desired[r.Dst.String()] = nr
		order = append(order, r.Dst.String())
	}
	have := map[string]netlink.Route{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := m.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return fmt.Errorf("listing overlay routes: %w", err)
		}
		for _, r := range rs {
			if r.Dst == nil {
				continue
			}
			k := r.Dst.String()
			if w, ok := desired[k]; ok {
				if same(w, &r) {
					have[k] = r
					continue
				}
				if fam == netlink.FAMILY_V4 {
					continue // a wrong one is replaced below
				}
				// IPv6 refuses to replace a route by one onlink on
				// another device (EINVAL): remove it, add it below.
				r := r
				if err := m.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("deleting overlay route %s to replace it: %w", k, err))
				}
				continue
			}
			r := r
			if err := m.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("deleting stale overlay route %s: %w", k, err))
			}
		}
	}
	for _, k := range order {
		r := desired[k]
		if _, ok := have[k]; ok {
			continue
		}
		if err := m.h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("programming overlay route %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// neighbours programs the permanent ARP/NDP and FDB entries of one device
// and removes the permanent ones nobody wants.
func (m *Manager) neighbours(l netlink.Link, dv Device, d Desired) error {
	var errs []error
	idx := l.Attrs().Index
	family := unix.AF_INET
	if dv.IPv6 {
		family = unix.AF_INET6
	}
	wantN := map[string]Neighbour{}
	for _, n := range d.Neighbours {
		if n.Dev == dv.Name {
			wantN[n.IP.String()] = n
		}
	}
	ns, err := m.h.NeighList(idx, family)
	if err != nil {
		return fmt.Errorf("listing neighbours of %s: %w", dv.Name, err)
	}
	for _, n := range ns {
		ip, _ := netip.AddrFromSlice(n.IP)
		k := ip.Unmap().String()
		if w, ok := wantN[k]; ok && bytes.Equal(n.HardwareAddr, w.MAC) && n.State == netlink.NUD_PERMANENT {
			delete(wantN, k)
			continue
		}
		if _, ok := wantN[k]; ok || n.State == netlink.NUD_PERMANENT {
			n := n
			if err := m.h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("deleting neighbour %s on %s: %w", k, dv.Name, err))
			}
		}
	}
	for _, w := range wantN {
		n := &netlink.Neigh{LinkIndex: idx, Family: family, State: netlink.NUD_PERMANENT,
			IP: net.IP(w.IP.AsSlice()), HardwareAddr: w.MAC}
		if err := m.h.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("adding neighbour %s lladdr %s on %s: %w", w.IP, w.MAC, dv.Name, err))
		}
	}

	wantF := map[string]FDB{}
	for _, f := range d.FDB {
		if f.Dev == dv.Name {
			wantF[strings.ToLower(f.MAC.String())] = f
		}
	}
	fs, err := m.h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing FDB of %s: %w", dv.Name, err))...)
	}
	for _, f := range fs {
		k := strings.ToLower(f.HardwareAddr.String())
		ip, _ := netip.AddrFromSlice(f.IP)
		if w, ok := wantF[k]; ok && ip.Unmap() == w.Dst {
			delete(wantF, k)
			continue
		}
		if f.State&netlink.NUD_PERMANENT == 0 && f.State&netlink.NUD_NOARP == 0 {
			continue
		}
		f := f
		if err := m.h.NeighDel(&f); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("deleting FDB entry %s on %s: %w", k, dv.Name, err))
		}
	}
	for _, w := range wantF {
		f := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: net.IP(w.Dst.AsSlice()), HardwareAddr: w.MAC}
		if err := m.h.NeighSet(f); err != nil {
			errs = append(errs, fmt.Errorf("adding FDB entry %s dst %s on %s: %w", w.MAC, w.Dst, dv.Name, err))
		}
	}
	return errors.Join(errs...)
}
