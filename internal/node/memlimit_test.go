package node

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "256MiB", want: 256 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "512KiB", want: 512 << 10},
		{in: "1000000", want: 1000000},
		{in: "1000000B", want: 1000000},
		{in: "off", want: math.MaxInt64},
		{in: "0", want: math.MaxInt64},
		{in: "256MB", bad: true},
		{in: "-1MiB", bad: true},
		{in: "lots", bad: true},
		{in: "99999999999GiB", bad: true},
	} {
		got, err := ParseMemoryLimit(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// TestApplyMemoryLimit: the flag wins, GOMEMLIMIT is left as the runtime
// applied it, and without either the default is set.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	none := func(string) string { return "" }

	if got, err := ApplyMemoryLimit("", none); err != nil || got != DefaultMemoryLimit || debug.SetMemoryLimit(-1) != DefaultMemoryLimit {
		t.Errorf("no flag, no GOMEMLIMIT: limit %d (%v), runtime %d; want the default %d", got, err, debug.SetMemoryLimit(-1), DefaultMemoryLimit)
	}
	if got, err := ApplyMemoryLimit("1GiB", none); err != nil || got != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Errorf("--memory-limit 1GiB: limit %d (%v), runtime %d", got, err, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(123 << 20) // as GOMEMLIMIT=123MiB would at start
	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "123MiB"
		}
		return ""
	}
	if got, err := ApplyMemoryLimit("", env); err != nil || got != 123<<20 || debug.SetMemoryLimit(-1) != 123<<20 {
		t.Errorf("GOMEMLIMIT set: limit %d (%v), runtime %d; want it kept", got, err, debug.SetMemoryLimit(-1))
	}
	if _, err := ApplyMemoryLimit("lots", none); err == nil {
		t.Error("a bad --memory-limit was accepted")
	}
}
