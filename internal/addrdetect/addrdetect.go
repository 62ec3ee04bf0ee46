// Package addrdetect finds the address a host announces as its own (the
// Node's BGP address and router ID), by one of the methods Calico offers:
//
//	first-found          the first usable address on an interface that is
//	                     not a known virtual one (loopback, workload veths,
//	                     bridges of container runtimes, tunnels)
//	interface=REGEX      the first usable address on an interface whose name
//	                     matches REGEX (several regexes: comma-separated)
//	skip-interface=REGEX first-found, but ignoring matching interfaces too
//	can-reach=DEST       the source address the kernel would use to reach
//	                     DEST (a route lookup; no packet is sent)
//	cidr=CIDR[,CIDR]     the first address inside one of the CIDRs, on an
//	                     interface first-found would consider
//
// Example:
//
//	m, err := addrdetect.ParseMethod("interface=eth.*")
//	addr, err := addrdetect.Detect(addrdetect.Netlink{}, m, addrdetect.IPv4)
//	// addr is e.g. 172.17.8.101/24
package addrdetect

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Family selects IPv4 or IPv6.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) matches(a netip.Addr) bool {
	if f == IPv4 {
		return a.Is4()
	}
	return a.Is6() && !a.Is4In6()
}

// Interface is one network interface and its addresses, with their prefix
// lengths, in the order the kernel lists them.
type Interface struct {
	Name  string
	Addrs []netip.Prefix
}

// Host is what detection reads from the kernel; Netlink is the real one and
// tests use a fake.
type Host interface {
	Interfaces() ([]Interface, error)
	// SourceFor returns the source address the kernel would choose to
	// reach dst.
	SourceFor(dst netip.Addr) (netip.Addr, error)
}

// Method is a parsed detection method.
type Method struct {
	Kind     string // "first-found", "interface", "skip-interface", "can-reach", "cidr"
	Patterns []*regexp.Regexp
	Dest     netip.Addr
	CIDRs    []netip.Prefix
}

// defaultSkip are interfaces that never carry a host's own address: loopback,
// workload veths, container runtime bridges and tunnels (Calico skips the
// same kinds).
var defaultSkip = regexp.MustCompile(`^(lo|docker.*|cbr.*|dummy.*|virbr.*|lxcbr.*|veth.*|cali.*|tunl.*|flannel.*|kube-ipvs.*|cni.*|vxlan.*|wireguard.*|nodelocaldns.*)$`)

// ParseMethod parses a method as written in configuration; "" means
// first-found.
func ParseMethod(s string) (Method, error) {
	kind, arg, _ := strings.Cut(strings.TrimSpace(s), "=")
	switch kind {
	case "", "first-found":
		return Method{Kind: "first-found"}, nil
	case "interface", "skip-interface":
		if arg == "" {
			return Method{}, fmt.Errorf("address detection %q: %s= needs a regular expression", s, kind)
		}
		m := Method{Kind: kind}
		for _, p := range strings.Split(arg, ",") {
			re, err := regexp.Compile("^(" + p + ")$")
			if err != nil {
				return Method{}, fmt.Errorf("address detection %q: bad regular expression %q: %w", s, p, err)
			}
			m.Patterns = append(m.Patterns, re)
		}
		return m, nil
	case "can-reach":
		a, err := netip.ParseAddr(arg)
		if err != nil {
			return Method{}, fmt.Errorf("address detection %q: can-reach= needs an IP address: %w", s, err)
		}
		return Method{Kind: kind, Dest: a}, nil
	case "cidr":
		m := Method{Kind: kind}
		for _, c := range strings.Split(arg, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(c))
			if err != nil {
				return Method{}, fmt.Errorf("address detection %q: bad CIDR %q: %w", s, c, err)
			}
			m.CIDRs = append(m.CIDRs, p.Masked())
		}
		if len(m.CIDRs) == 0 {
			return Method{}, fmt.Errorf("address detection %q: cidr= needs at least one CIDR", s)
		}
		return m, nil
	}
	return Method{}, fmt.Errorf("address detection %q: unknown method (use first-found, interface=REGEX, skip-interface=REGEX, can-reach=DEST or cidr=CIDR)", s)
}

// ErrNotFound says no address fits the method.
var ErrNotFound = errors.New("no suitable address found")

// Detect returns the host's address of the family, with the prefix length
// of its subnet.
func Detect(h Host, m Method, fam Family) (netip.Prefix, error) {
	if m.Kind == "can-reach" {
		if !fam.matches(m.Dest) {
			return netip.Prefix{}, fmt.Errorf("can-reach=%s: not an IPv%d address", m.Dest, fam)
		}
		src, err := h.SourceFor(m.Dest)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("finding the route to %s: %w", m.Dest, err)
		}
		// Report the source with the prefix of the interface it is on.
		ifaces, err := h.Interfaces()
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("listing interfaces: %w", err)
		}
		for _, i := range ifaces {
			for _, a := range i.Addrs {
				if a.Addr() == src {
					return a, nil
				}
			}
		}
		return netip.PrefixFrom(src, src.BitLen()), nil
	}
	ifaces, err := h.Interfaces()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, i := range ifaces {
		if !m.wantsInterface(i.Name) {
			continue
		}
		for _, a := range i.Addrs {
			if usable(a.Addr(), fam) && m.wantsAddr(a.Addr()) {
				return a, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("IPv%d address by %s: %w", fam, m, ErrNotFound)
}

func (m Method) wantsInterface(name string) bool {
	switch m.Kind {
	case "interface":
		return matchAny(m.Patterns, name)
	case "skip-interface":
		return !defaultSkip.MatchString(name) && !matchAny(m.Patterns, name)
	default:
		return !defaultSkip.MatchString(name)
	}
}

func (m Method) wantsAddr(a netip.Addr) bool {
	if m.Kind != "cidr" {
		return true
	}
	for _, c := range m.CIDRs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// usable: an address of the family that can identify a host to its peers.
func usable(a netip.Addr, fam Family) bool {
	return fam.matches(a) && a.IsGlobalUnicast() && !a.IsLinkLocalUnicast()
}

func (m Method) String() string {
	switch m.Kind {
	case "interface", "skip-interface":
		var ps []string
		for _, p := range m.Patterns {
			ps = append(ps, strings.TrimSuffix(strings.TrimPrefix(p.String(), "^("), ")$"))
		}
		return m.Kind + "=" + strings.Join(ps, ",")
	case "can-reach":
		return "can-reach=" + m.Dest.String()
	case "cidr":
		var cs []string
		for _, c := range m.CIDRs {
			cs = append(cs, c.String())
		}
		return "cidr=" + strings.Join(cs, ",")
	}
	return m.Kind
}
