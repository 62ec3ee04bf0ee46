package addrdetect

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Netlink reads interfaces and routes from the kernel of the calling
// thread's network namespace.
type Netlink struct{}

// Interfaces lists interfaces in index order with their addresses.
func (Netlink) Interfaces() ([]Interface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []Interface
	for _, l := range links {
		if l.Attrs().OperState == netlink.OperDown && l.Attrs().Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", l.Attrs().Name, err)
		}
		i := Interface{Name: l.Attrs().Name}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			ones, _ := a.Mask.Size()
			i.Addrs = append(i.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, i)
	}
	return out, nil
}

// SourceFor asks the kernel which source address it would use for dst.
func (Netlink) SourceFor(dst netip.Addr) (netip.Addr, error) {
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route lookup for %s: %w", dst, err)
	}
	for _, r := range routes {
		if src, ok := netip.AddrFromSlice(r.Src); ok && src.IsValid() {
			return src.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("route to %s has no source address", dst)
}
