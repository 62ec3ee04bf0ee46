package cni

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestHintsFile: each write replaces the node's block of that family and
// keeps everything else; lines that do not parse are dropped, not fatal.
func TestHintsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.lock.hint")
	if err := os.WriteFile(path, []byte("garbage\nn9 not-a-cidr\nn9 10.9.0.0/26\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	steps := []struct {
		node   string
		blocks []netip.Prefix
		want   map[string]string // node -> its hints after the step
	}{
		{"n1", []netip.Prefix{pfx("10.1.0.0/26")}, map[string]string{"n1": "[10.1.0.0/26]", "n9": "[10.9.0.0/26]"}},
		{"n1", []netip.Prefix{pfx("fd00:1::/122")}, map[string]string{"n1": "[10.1.0.0/26 fd00:1::/122]"}},
		{"n2", []netip.Prefix{pfx("10.2.0.0/26")}, map[string]string{"n1": "[10.1.0.0/26 fd00:1::/122]", "n2": "[10.2.0.0/26]"}},
		{"n1", []netip.Prefix{pfx("10.1.0.64/26")}, map[string]string{"n1": "[fd00:1::/122 10.1.0.64/26]", "n2": "[10.2.0.0/26]", "n9": "[10.9.0.0/26]"}},
	}
	for i, st := range steps {
		if err := writeHints(path, st.node, st.blocks); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for node, want := range st.want {
			if got := fmt.Sprint(readHints(path, node)); got != want {
				t.Errorf("step %d: hints of %s = %s, want %s", i, node, got, want)
			}
		}
	}
	if got := readHints(filepath.Join(t.TempDir(), "missing"), "n1"); got != nil {
		t.Errorf("hints from a missing file: %v", got)
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
