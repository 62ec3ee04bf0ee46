package netconst

import "testing"

func TestValidInterfaceName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"cali1234567890a", true}, // 15 bytes
		{"eth0", true},
		{"a.b", true},
		{"x..", true},
		{"", false},
		{".", false},
		{"..", false},
		{"cali1234567890ab", false}, // 16 bytes
		{"cali/../all", false},
		{"cali/x", false},
		{"eth0:1", false},
		{"cali 1", false},
		{"cali\t1", false},
		{"cali\n", false},
		{"cali\x00", false},
		{"cali\u00a0x", false}, // non-breaking space
	} {
		if got := ValidInterfaceName(tc.name); got != tc.ok {
			t.Errorf("ValidInterfaceName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestVethName(t *testing.T) {
	for _, tc := range []struct{ prefix, key, want string }{
		{"cali", "default.nginx", "calic440f455693"}, // Calico's name of pod default/nginx
		{"tap", "abc123", "tap6367c48dd19"},
	} {
		if got := VethName(tc.prefix, tc.key); got != tc.want || !ValidInterfaceName(got) {
			t.Errorf("VethName(%q, %q) = %q, want %q", tc.prefix, tc.key, got, tc.want)
		}
	}
}
