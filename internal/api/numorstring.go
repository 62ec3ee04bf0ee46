package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The types in this file are the "number or string" values of Calico's API:
// protocols, ports, AS numbers and durations. Each decodes leniently (any
// number or string is kept as written) so that validation, which knows the
// field's path, is the one to report a bad value; and each encodes back to
// the canonical form Calico prints.

// rawText returns the JSON text of a scalar as the user wrote it: the
// string's contents, or the number's digits. Anything else (true, an
// object, a list) comes back as its JSON text with ok false, so that
// validation can report it at the field's full path.
func rawText(b []byte) (text string, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err == nil {
			return s, true
		}
	}
	if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		return string(b), true
	}
	return string(b), false
}

// ---------------------------------------------------------------------------
// Protocol

// Protocol names an IP protocol: one of TCP, UDP, ICMP, ICMPv6, SCTP and
// UDPLite (spelled exactly so, as Calico requires), or a number 1-255. The
// zero value is no protocol.
type Protocol struct {
	name  string // the name, or the number's text
	isNum bool
}

// ProtocolFromString returns the protocol with the given name (or number,
// written in decimal).
func ProtocolFromString(s string) Protocol {
	if _, err := strconv.Atoi(s); err == nil {
		return Protocol{name: s, isNum: true}
	}
	return Protocol{name: s}
}

// ProtocolFromInt returns the protocol with the given number.
func ProtocolFromInt(n int) Protocol { return Protocol{name: strconv.Itoa(n), isNum: true} }

// Protocol numbers of the protocols that have names.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

var protocolNumbers = map[string]int{
	"TCP": ProtoTCP, "UDP": ProtoUDP, "ICMP": ProtoICMP, "ICMPv6": ProtoICMPv6,
	"SCTP": ProtoSCTP, "UDPLite": ProtoUDPLite,
}

// String is the protocol as written: "TCP" or "6".
func (p Protocol) String() string { return p.name }

// IsZero reports whether no protocol is set.
func (p Protocol) IsZero() bool { return p.name == "" }

// Number returns the protocol number, and false when the protocol is not a
// valid name or a number in 1-255.
func (p Protocol) Number() (int, bool) {
	if p.isNum {
		n, err := strconv.Atoi(p.name)
		if err != nil || n < 1 || n > 255 {
			return 0, false
		}
		return n, true
	}
	n, ok := protocolNumbers[p.name]
	return n, ok
}

// Valid reports whether the protocol is a known name or a number 1-255.
func (p Protocol) Valid() bool { _, ok := p.Number(); return ok }

// SupportsPorts reports whether the protocol has ports (TCP, UDP, SCTP).
func (p Protocol) SupportsPorts() bool {
	n, ok := p.Number()
	return ok && (n == ProtoTCP || n == ProtoUDP || n == ProtoSCTP)
}

// Is reports whether p is the protocol with number n, by name or number.
func (p Protocol) Is(n int) bool {
	m, ok := p.Number()
	return ok && m == n
}

// MarshalJSON writes a number for a numeric protocol and a string otherwise.
func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.isNum {
		if n, err := strconv.Atoi(p.name); err == nil {
			return []byte(strconv.Itoa(n)), nil
		}
	}
	return json.Marshal(p.name)
}

// UnmarshalJSON accepts any number or string; Validate judges the value.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	s, ok := rawText(b)
	if !ok {
		*p = Protocol{name: s}
		return nil
	}
	*p = ProtocolFromString(s)
	return nil
}

func validateProtocol(errs *ErrorList, p Path, proto Protocol) {
	if !proto.Valid() {
		errs.Invalid(p, proto.name, "is not a valid protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255)")
	}
}

// ---------------------------------------------------------------------------
// Port

// Port is one port (80), a range ("8080:8090", both ends included) or the
// name of a port declared on the endpoints ("http"). In JSON a single port
// is a number or a string.
type Port struct {
	MinPort, MaxPort int    // both 0 for a named port
	PortName         string // set for a named port
	raw              string // as written, kept to report a bad value
	bad              string // why the value is not a port; "" when it is
}

// SinglePort returns the port n.
func SinglePort(n int) Port { return Port{MinPort: n, MaxPort: n, raw: strconv.Itoa(n)} }

// PortRange returns the ports from min to max inclusive.
func PortRange(min, max int) Port {
	return Port{MinPort: min, MaxPort: max, raw: fmt.Sprintf("%d:%d", min, max)}
}

// NamedPort returns a reference to a named port.
func NamedPort(name string) Port { return Port{PortName: name, raw: name} }

// PortFromString parses "80", "8080:8090" or a port name. Problems are
// kept in the value and reported by validation.
func PortFromString(s string) Port {
	p := Port{raw: s}
	parseNum := func(t string) (int, bool) {
		if t == "" || strings.TrimLeft(t, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.Atoi(t)
		if err != nil {
			return 1 << 30, true // absurdly large: out of range below
		}
		return n, true
	}
	if lo, hi, isRange := strings.Cut(s, ":"); isRange {
		a, ok1 := parseNum(lo)
		b, ok2 := parseNum(hi)
		switch {
		case !ok1 || !ok2:
			p.bad = "is not a valid port range (min:max)"
		case a < 1 || a > 65535 || b < 1 || b > 65535:
			p.bad = "is not a valid port range (ports are 1-65535)"
		case a > b:
			p.bad = "is not a valid port range (the first port is larger than the last)"
		default:
			p.MinPort, p.MaxPort = a, b
		}
		return p
	}
	if n, ok := parseNum(s); ok {
		if n < 1 || n > 65535 {
			p.bad = "is not a valid port (1-65535)"
		} else {
			p.MinPort, p.MaxPort = n, n
		}
		return p
	}
	if strings.HasPrefix(s, "-") && strings.TrimLeft(s[1:], "0123456789") == "" {
		p.bad = "is not a valid port (1-65535)"
		return p
	}
	if s == "" || strings.ContainsAny(s, " \t\n") {
		p.bad = "is not a valid port, port range or port name"
		return p
	}
	p.PortName = s
	return p
}

// String renders the port as Calico prints it.
func (p Port) String() string {
	switch {
	case p.bad != "":
		return p.raw
	case p.PortName != "":
		return p.PortName
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(p.MinPort)
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

// MarshalJSON writes a single port as a number and anything else as a string.
func (p Port) MarshalJSON() ([]byte, error) {
	if p.bad == "" && p.PortName == "" && p.MinPort == p.MaxPort {
		return []byte(strconv.Itoa(p.MinPort)), nil
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON accepts a number or a string; Validate judges the value.
func (p *Port) UnmarshalJSON(b []byte) error {
	s, ok := rawText(b)
	if !ok {
		*p = Port{raw: s, bad: "is not a valid port, port range or port name"}
		return nil
	}
	*p = PortFromString(s)
	if p.PortName != "" && bytes.TrimSpace(b)[0] != '"' {
		*p = Port{raw: s, bad: "is not a valid port (1-65535)"} // e.g. 80.5
	}
	return nil
}

func validatePort(errs *ErrorList, path Path, p Port) {
	if p.bad != "" {
		errs.Invalid(path, p.raw, p.bad)
		return
	}
	if p.PortName == "" && (p.MinPort < 1 || p.MaxPort > 65535 || p.MinPort > p.MaxPort) {
		errs.Invalid(path, p.String(), "is not a valid port (1-65535)")
	}
}

// ---------------------------------------------------------------------------
// ASNumber

// ASNumber is a BGP autonomous system number, 32 bits. It may be written as
// a number (64512) or in the dotted "asdot" notation ("1.10" is 65546).
type ASNumber struct {
	value uint32
	raw   string
	bad   bool
}

// ASNumberFrom returns the AS number n.
func ASNumberFrom(n uint32) ASNumber {
	return ASNumber{value: n, raw: strconv.FormatUint(uint64(n), 10)}
}

// ASNumberFromString parses "64512" or "1.10".
func ASNumberFromString(s string) ASNumber {
	a := ASNumber{raw: s}
	if hi, lo, dotted := strings.Cut(s, "."); dotted {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			a.bad = true
			return a
		}
		a.value = uint32(h)<<16 | uint32(l)
		return a
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		a.bad = true
		return a
	}
	a.value = uint32(n)
	return a
}

// Uint32 returns the AS number, and false when the value written was not one.
func (a ASNumber) Uint32() (uint32, bool) { return a.value, !a.bad }

// String renders the number in decimal (or the bad value as written).
func (a ASNumber) String() string {
	if a.bad {
		return a.raw
	}
	return strconv.FormatUint(uint64(a.value), 10)
}

// MarshalJSON writes the AS number as a plain number.
func (a ASNumber) MarshalJSON() ([]byte, error) {
	if a.bad {
		return json.Marshal(a.raw)
	}
	return []byte(a.String()), nil
}

// UnmarshalJSON accepts a number or a string; Validate judges the value.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	s, ok := rawText(b)
	if !ok {
		*a = ASNumber{raw: s, bad: true}
		return nil
	}
	*a = ASNumberFromString(s)
	return nil
}

func validateASNumber(errs *ErrorList, p Path, a *ASNumber) {
	if a != nil && a.bad {
		errs.Invalid(p, a.raw, "is not a valid AS number (0-4294967295, or dotted as 0-65535.0-65535)")
	}
}

// ---------------------------------------------------------------------------
// Duration

// Duration is a length of time written as Go writes it: "90s", "1m30s",
// "500ms". Like Kubernetes' metav1.Duration it is a string in JSON.
type Duration struct {
	time.Duration
	raw string
	bad bool
}

// DurationOf returns d as a Duration.
func DurationOf(d time.Duration) Duration { return Duration{Duration: d} }

// String renders the duration as written when it was parsed, or in Go's form.
func (d Duration) String() string {
	if d.raw != "" {
		return d.raw
	}
	return d.Duration.String()
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a string (a bare number is kept and reported as
// missing its unit by validation).
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, ok := rawText(b)
	*d = Duration{raw: s}
	v, err := time.ParseDuration(s)
	if !ok || err != nil {
		d.bad = true
		return nil
	}
	d.Duration = v
	return nil
}

func validateDuration(errs *ErrorList, p Path, d *Duration) {
	if d == nil {
		return
	}
	if d.bad {
		errs.Invalid(p, d.raw, `is not a valid duration (a number with a unit, e.g. "90s", "1m30s", "500ms")`)
	} else if d.Duration < 0 {
		errs.Invalid(p, d.String(), "must not be negative")
	}
}
