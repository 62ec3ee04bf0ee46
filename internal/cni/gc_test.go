package cni

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: the collector is off below the limit unless GOGC or
// GOMEMLIMIT is set, which are left to the runtime.
func TestTuneGC(t *testing.T) {
	tests := []struct {
		name, env, val string
		wantOff        bool
	}{
		{"defaults", "", "", true},
		{"GOGC set", "GOGC", "50", false},
		{"GOMEMLIMIT set", "GOMEMLIMIT", "1GiB", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			if tt.env != "" {
				t.Setenv(tt.env, tt.val)
			}
			pct, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetGCPercent(pct); debug.SetMemoryLimit(limit) })
			TuneGC()
			gotPct, gotLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
			if off := gotPct < 0 && gotLimit == PluginMemoryLimit; off != tt.wantOff {
				t.Errorf("after TuneGC: GOGC %d, memory limit %d; want off below the limit: %v", gotPct, gotLimit, tt.wantOff)
			}
		})
	}
}
