package dataplane

import (
	"slices"
	"strings"
	"testing"
)

// A workload interface name that would walk out of its /proc/sys directory
// ("cali/../all" makes net/ipv4/conf/cali/../all/proxy_arp, that is every
// interface's setting) is never written, whatever reached the dataplane.
func TestSysctlsSkipInvalidInterfaceNames(t *testing.T) {
	for _, name := range []string{"cali/../all", "cali/../default", "cali/x", "cali0:1", "cali 1", "cali1234567890abc"} {
		t.Run(name, func(t *testing.T) {
			d := newTestDP(t)
			d.OnWorkloadEndpointUpdate(wep("ns/w1", name, pfx("10.65.0.1/32"), nil))
			d.OnWorkloadEndpointUpdate(wep("ns/w2", "cali1", pfx("10.65.0.2/32"), nil))
			_ = d.Apply(t.Context()) // routes to a device that cannot exist may fail; sysctls must not be written
			for _, w := range d.sysctl.Writes {
				if strings.Contains(w, name) || strings.Contains(w, "/all/proxy_arp") || strings.Contains(w, "/default/") {
					t.Errorf("wrote %q", w)
				}
			}
			if !slices.Contains(d.sysctl.Writes, "net/ipv4/conf/cali1/proxy_arp=1") {
				t.Errorf("the valid endpoint was not configured: %q", d.sysctl.Writes)
			}
		})
	}
}

func TestCheckSysctlName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"net/ipv4/ip_forward", true},
		{"net/ipv4/conf/cali1/proxy_arp", true},
		{"net/ipv4/conf/cali/../all/proxy_arp", false},
		{"net/ipv4/conf/./proxy_arp", false},
		{"net/ipv4/conf//proxy_arp", false},
		{"/etc/passwd", false},
		{"", false},
	} {
		if err := checkSysctlName(tc.name); (err == nil) != tc.ok {
			t.Errorf("checkSysctlName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
