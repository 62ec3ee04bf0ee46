package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/servalnet/serval/internal/netconst"
	"github.com/servalnet/serval/internal/selector"
)

// This file holds the field checks shared by several kinds. Each appends
// to an ErrorList at the path it is given and never panics.

// validateSelector is the selector check; a variable so that a test can
// observe it, and so that the API package has one place where it depends
// on the selector grammar.
var validateSelector = selector.Validate

func checkSelector(errs *ErrorList, p Path, s string) {
	if s == "" {
		return
	}
	if err := validateSelector(s); err != nil {
		var pe *selector.ParseError
		if errors.As(err, &pe) {
			errs.Invalid(p, s, fmt.Sprintf("is not a valid selector: at position %d: %s", pe.Pos, pe.Msg))
			return
		}
		errs.Invalid(p, s, "is not a valid selector: "+err.Error())
	}
}

// checkNoGlobal reports a global() clause outside an EntityRule's
// namespaceSelector, where Calico does not allow it.
func checkNoGlobal(errs *ErrorList, p Path, s string) {
	// A selector that does not parse is reported by the caller's syntax check.
	if sel, err := selector.Parse(s); err == nil && selector.UsesGlobal(sel) {
		errs.Invalid(p, s, "must not use global(): it is only valid in a rule's namespaceSelector")
	}
}

// parseCIDROrIP parses "10.0.0.0/16" or a bare address (taken as /32 or
// /128), as Calico does. It returns the address as written and the network.
func parseCIDROrIP(s string) (net.IP, *net.IPNet, error) {
	if !strings.Contains(s, "/") {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, nil, fmt.Errorf("not an IP address or CIDR")
		}
		bits := 128
		if ip.To4() != nil {
			ip = ip.To4()
			bits = 32
		}
		return ip, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, nil, fmt.Errorf("not a valid CIDR")
	}
	if ip.To4() != nil {
		ip = ip.To4()
	}
	return ip, n, nil
}

// ipVersion is 4 or 6.
func ipVersion(ip net.IP) int {
	if ip.To4() != nil {
		return 4
	}
	return 6
}

// checkNet checks a network that must be strictly masked (host bits zero):
// Calico's "net" rule. It returns the IP version, 0 when invalid.
func checkNet(errs *ErrorList, p Path, s string) int {
	ip, n, err := parseCIDROrIP(s)
	if err != nil {
		errs.Invalid(p, s, "is not a valid CIDR")
		return 0
	}
	if !n.IP.Equal(ip) {
		ones, _ := n.Mask.Size()
		errs.Invalid(p, s, fmt.Sprintf("is not a valid network: host bits are set (did you mean %s/%d?)", n.IP, ones))
		return 0
	}
	return ipVersion(ip)
}

// checkCIDR checks an address or a network whose host bits may be set
// (Calico's "cidr" rule). It returns the IP version, 0 when invalid.
func checkCIDR(errs *ErrorList, p Path, s string) int {
	ip, _, err := parseCIDROrIP(s)
	if err != nil {
		errs.Invalid(p, s, "is not a valid IP address or CIDR")
		return 0
	}
	return ipVersion(ip)
}

// checkCIDRFamily is checkCIDR restricted to one IP version.
func checkCIDRFamily(errs *ErrorList, p Path, s string, version int) {
	ip, _, err := parseCIDROrIP(s)
	if err != nil || ipVersion(ip) != version {
		errs.Invalid(p, s, fmt.Sprintf("is not a valid IPv%d address or CIDR", version))
	}
}

// checkIP checks a bare address; version 0 accepts either family.
func checkIP(errs *ErrorList, p Path, s string, version int) {
	ip := net.ParseIP(s)
	switch {
	case ip == nil && version == 0:
		errs.Invalid(p, s, "is not a valid IP address")
	case ip == nil || (version != 0 && ipVersion(ip) != version):
		errs.Invalid(p, s, fmt.Sprintf("is not a valid IPv%d address", version))
	}
}

// checkName checks a reference to another resource by name (a DNS-1123
// subdomain, Calico's "name" rule).
func checkName(errs *ErrorList, p Path, s string) {
	if msg := CheckDNS1123Subdomain(s); msg != "" {
		errs.Invalid(p, s, "is not a valid name: "+msg)
	}
}

var (
	interfaceRE        = newLazyRegexp(`^[a-zA-Z0-9_.-]{1,15}$`)
	ignoredInterfaceRE = newLazyRegexp(`^[a-zA-Z0-9_.*-]{1,15}$`)
	ifaceFilterRE      = newLazyRegexp(`^[a-zA-Z0-9:._+-]{1,15}$`)
	containerIDRE      = newLazyRegexp(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	portNameRE         = newLazyRegexp(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	portNameLetterRE   = newLazyRegexp(`[a-z]`)
)

// checkInterface checks a Linux interface name (at most 15 characters).
func checkInterface(errs *ErrorList, p Path, s string, allowStar bool) {
	if (allowStar && s == "*") || (interfaceRE.MatchString(s) && netconst.ValidInterfaceName(s)) {
		return
	}
	errs.Invalid(p, s, "is not a valid interface name (1-15 letters, digits, '_', '.' or '-', and not \".\" or \"..\")")
}

// checkPortName checks a port name as Kubernetes defines it (IANA_SVC_NAME):
// at most 15 lower-case letters, digits and '-', with at least one letter,
// no '-' at either end and no "--".
func checkPortName(errs *ErrorList, p Path, s string) {
	switch {
	case s == "":
		errs.Required(p)
	case len(s) > 15 || !portNameRE.MatchString(s) || strings.Contains(s, "--") || !portNameLetterRE.MatchString(s):
		errs.Invalid(p, s, "is not a valid port name (at most 15 lower-case letters, digits and '-', with at least one letter, and no '-' at either end or twice in a row)")
	}
}

// checkMAC checks a hardware address.
func checkMAC(errs *ErrorList, p Path, s string) {
	if _, err := net.ParseMAC(s); err != nil {
		errs.Invalid(p, s, "is not a valid MAC address")
	}
}

// checkWireguardKey checks a WireGuard public key: 32 bytes, base64.
func checkWireguardKey(errs *ErrorList, p Path, s string) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		errs.Invalid(p, s, "is not a valid WireGuard key (32 bytes in base64)")
	}
}

// checkEnum checks that s is one of the allowed values (exact case).
func checkEnum(errs *ErrorList, p Path, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	errs.Invalid(p, s, "is not one of "+strings.Join(allowed, ", "))
}

// checkEnumFold is checkEnum ignoring case, for the FelixConfiguration
// values Calico matches case-insensitively.
func checkEnumFold(errs *ErrorList, p Path, s string, allowed ...string) {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return
		}
	}
	errs.Invalid(p, s, "is not one of "+strings.Join(allowed, ", "))
}

// checkAnnotations checks annotation keys (qualified names, compared in
// lower case as Calico does) and their total size (256 KiB at most).
func checkAnnotations(errs *ErrorList, p Path, annotations map[string]string) {
	total := 0
	for _, k := range sortedKeys(annotations) {
		if msg := CheckQualifiedName(strings.ToLower(k)); msg != "" {
			errs.Invalid(p.Key(k), k, "is not a valid annotation key: "+msg)
		}
		total += len(k) + len(annotations[k])
	}
	if limit := 256 << 10; total > limit {
		errs.Add(p, "annotations are too large: %d bytes, at most %d", total, limit)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// checkLabelMap checks labels outside metadata (e.g. labelsToApply), and
// sorts the errors so that messages come out in a stable order.
func checkLabelMap(errs *ErrorList, p Path, labels map[string]string) {
	var sub ErrorList
	ValidateLabels(&sub, p, labels)
	sortErrors(sub)
	*errs = append(*errs, sub...)
}

func sortErrors(l ErrorList) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Error() < l[j-1].Error(); j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// forbidNamespaceLabel reports the projectcalico.org/namespace label, which
// Calico reserves for its own use on network sets.
func forbidNamespaceLabel(errs *ErrorList, labels map[string]string) {
	const reserved = "projectcalico.org/namespace"
	if _, ok := labels[reserved]; ok {
		errs.Invalid(Path("metadata.labels").Key(reserved), reserved, "is reserved by Calico and must not be set")
	}
}

func ptr[T any](v T) *T { return &v }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
