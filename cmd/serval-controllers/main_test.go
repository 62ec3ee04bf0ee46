package main

import "testing"

// TestRunRefusesBadFlags: bad flags fail with exit status 2 before
// anything is contacted; --version succeeds.
func TestRunRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--version"}, 0},
		{[]string{"--no-such-flag"}, 2},
		{[]string{"--datastore-type", "bogus"}, 2},
		{[]string{"--log-level", "loud"}, 2},
		{[]string{"--ipam-gc-grace-period", "soon"}, 2},
		{[]string{"--ipam-gc-grace-period", "-1s"}, 2},
		{[]string{"--ipam-gc-workers", "0"}, 2},
	}
	for _, tt := range tests {
		if got := run(tt.args); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
}
