package dataplane

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/servalnet/serval/internal/hoststate"
)

// Host endpoints by expectedIPs, and interfaceExclude. A host endpoint with
// expectedIPs and no interfaceName applies, as in Calico, to the host
// interfaces that carry one of those addresses; the dataplane reads the
// host's interfaces and addresses (HostIfaces) to find them, again on every
// interface refresh and whenever a host endpoint changes. An interface
// named by a host endpoint's interfaceName is that endpoint's; of two
// endpoints resolving to one interface, the first by name has it.
// interfaceExclude names interfaces that an all-interfaces ("*") host
// endpoint never covers: exact names, or /regular expressions/ matched
// against the host's interfaces as last read.

// HostIfaces lists the host's interfaces and addresses; *netlink.Handle
// implements it.
type HostIfaces interface {
	LinkList() ([]netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

// hostView is what was last read of the host's interfaces.
type hostView struct {
	links []string                // interface names, sorted
	addrs map[netip.Addr][]string // address → interfaces carrying it
}

// readHost reads the host's interfaces and addresses when they may have
// changed; it reports whether anything differs from the last read.
func (d *Dataplane) readHost() (bool, error) {
	if d.hostIfaces == nil || !d.hostIfacesStale {
		return false, nil
	}
	links, err := d.hostIfaces.LinkList()
	if err != nil {
		return false, fmt.Errorf("listing host interfaces: %w", err)
	}
	names := map[int]string{}
	v := hostView{addrs: map[netip.Addr][]string{}}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
		v.links = append(v.links, l.Attrs().Name)
	}
	addrs, err := d.hostIfaces.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return false, fmt.Errorf("listing host addresses: %w", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		n := names[a.LinkIndex]
		if !ok || n == "" {
			continue
		}
		ip = ip.Unmap()
		if !slices.Contains(v.addrs[ip], n) {
			v.addrs[ip] = append(v.addrs[ip], n)
		}
	}
	slices.Sort(v.links)
	d.hostIfacesStale = false
	changed := !slices.Equal(v.links, d.host.links) || !maps.EqualFunc(v.addrs, d.host.addrs, func(a, b []string) bool {
		return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
	})
	d.host = v
	return changed, nil
}

// resolveHostEndpoints finds the interfaces of the host endpoints that
// have expectedIPs and no interfaceName, and marks those whose interfaces
// changed.
func (d *Dataplane) resolveHostEndpoints() {
	claimed := map[string]bool{}
	var ids []hoststate.EndpointID
	for id, ep := range d.heps {
		switch {
		case ep.InterfaceName != "" && ep.InterfaceName != "*":
			claimed[ep.InterfaceName] = true
		case ep.InterfaceName == "" && len(ep.ExpectedIPs) > 0:
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := map[hoststate.EndpointID][]string{}
	for _, id := range ids {
		var ifs []string
		for _, a := range d.heps[id].ExpectedIPs {
			for _, n := range d.host.addrs[a.Unmap()] {
				if !claimed[n] && !d.isWorkloadIface(n) {
					claimed[n] = true
					ifs = append(ifs, n)
				}
			}
		}
		if len(ifs) > 0 {
			slices.Sort(ifs)
			next[id] = ifs
		}
	}
	for id := range d.hepResolved {
		if _, ok := next[id]; !ok {
			d.dirtyHEPs[id] = true
		}
	}
	for id, ifs := range next {
		if !slices.Equal(ifs, d.hepResolved[id]) {
			d.dirtyHEPs[id] = true
		}
	}
	d.hepResolved = next
}

func (d *Dataplane) isWorkloadIface(n string) bool {
	for _, p := range prefixesOf(d.cfg) {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// hepInterfaces are the interfaces a host endpoint applies to: its
// interfaceName, or those its expectedIPs resolved to.
func (d *Dataplane) hepInterfaces(ep hoststate.HostEndpoint) []string {
	if ep.InterfaceName != "" {
		return []string{ep.InterfaceName}
	}
	return d.hepResolved[ep.ID]
}

// excludedInterfaces are the host interfaces interfaceExclude names: its
// exact names, and the host's interfaces its expressions match.
func (d *Dataplane) excludedInterfaces() []string {
	var out []string
	for _, e := range d.cfg.InterfaceExclude {
		if len(e) >= 2 && e[0] == '/' && e[len(e)-1] == '/' {
			re, err := regexp.Compile(e[1 : len(e)-1])
			if err != nil {
				d.log.Warn("ignoring an invalid interfaceExclude expression", "entry", e, "err", err)
				continue
			}
			for _, n := range d.host.links {
				if re.MatchString(n) {
					out = append(out, n)
				}
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// setHEPMapElems replaces the verdict map elements of a host endpoint, one
// group per interface it applies to.
func (d *Dataplane) setHEPMapElems(key string, per map[string]map[string]elem) {
	for _, n := range d.hepSubKeys[key] {
		if _, ok := per[n]; !ok {
			d.setObjMapElems(key+"@"+n, nil)
		}
	}
	subs := slices.Sorted(maps.Keys(per))
	for _, n := range subs {
		d.setObjMapElems(key+"@"+n, per[n])
	}
	if len(subs) == 0 {
		delete(d.hepSubKeys, key)
	} else {
		d.hepSubKeys[key] = subs
	}
}

// WatchHost reports changes of the host's addresses and interfaces (in
// network namespace ns; netns.None() for the caller's) on the returned
// channel, merged, until ctx ends: Options.HostChanges, so that a host
// endpoint by expectedIPs follows its address at once rather than at the
// next interface refresh.
func WatchHost(ctx context.Context, ns netns.NsHandle) (<-chan struct{}, error) {
	done := make(chan struct{})
	addrs := make(chan netlink.AddrUpdate, 64)
	links := make(chan netlink.LinkUpdate, 64)
	if err := netlink.AddrSubscribeAt(ns, addrs, done); err != nil {
		close(done)
		return nil, fmt.Errorf("subscribing to address changes: %w", err)
	}
	if err := netlink.LinkSubscribeAt(ns, links, done); err != nil {
		close(done)
		return nil, fmt.Errorf("subscribing to interface changes: %w", err)
	}
	out := make(chan struct{}, 1)
	poke := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-addrs:
				if !ok {
					return
				}
				poke()
			case _, ok := <-links:
				if !ok {
					return
				}
				poke()
			}
		}
	}()
	return out, nil
}
