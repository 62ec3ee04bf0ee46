package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/crd"
)

// TestRun writes the CRDs into an empty directory and into one holding a
// stale CRD file and an unrelated file: every kind gets its file, the stale
// CRD goes, the unrelated file stays.
func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		present map[string]string
		kept    []string
		removed []string
	}{
		{name: "empty directory"},
		{name: "stale files",
			present: map[string]string{"oldkinds.projectcalico.org.yaml": "x", "README.md": "keep me", "ippools.projectcalico.org.yaml": "old"},
			kept:    []string{"README.md"},
			removed: []string{"oldkinds.projectcalico.org.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "crds")
			if tc.present != nil {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, content := range tc.present {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := run(dir); err != nil {
				t.Fatal(err)
			}
			want, err := crd.Files(api.Kinds())
			if err != nil {
				t.Fatal(err)
			}
			for name, content := range want {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(got) != string(content) {
					t.Errorf("%s: not written as generated (%v)", name, err)
				}
			}
			for _, name := range tc.kept {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					t.Errorf("%s was removed: %v", name, err)
				}
			}
			for _, name := range tc.removed {
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Errorf("stale %s was not removed (%v)", name, err)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(want)+len(tc.kept) {
				t.Errorf("%d files in %s, want %d", len(entries), dir, len(want)+len(tc.kept))
			}
		})
	}
}
