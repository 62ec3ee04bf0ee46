package cni

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestWorkloadMTU(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "mtu")
	if err := os.WriteFile(good, []byte("1450\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		conf NetConf
		want int
	}{
		{"explicit mtu wins over the file", NetConf{MTU: 1400, MTUFile: good}, 1400},
		{"file when no mtu", NetConf{MTUFile: good}, 1450},
		{"host's when no file", NetConf{MTUFile: filepath.Join(dir, "absent")}, 9000},
		{"host's when the file is garbage", NetConf{MTUFile: bad}, 9000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := workloadMTU(&tc.conf, &fakeDataplane{}, slog.New(slog.DiscardHandler)); got != tc.want {
				t.Errorf("workloadMTU = %d, want %d", got, tc.want)
			}
		})
	}
}
