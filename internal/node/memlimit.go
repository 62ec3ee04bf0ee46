package node

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit serval-node
// runs with unless told otherwise (--memory-limit, or GOMEMLIMIT).
//
// It is a supplement, not what keeps the agent small: that is holding
// little per remote endpoint (see calc and dataplane), and collecting once
// after a very large transaction (Agent.afterApply). With the default
// GOGC the heap may grow to twice what is live before a collection; at
// 100,000 remote endpoints some 110 MiB stay live (140 MiB during the
// cold start's big transaction), and serval-node peaked at 255 MiB RSS
// without a limit. The limit makes the collector run earlier as the heap
// nears it, at the cost of more collections during a cold start. The
// runtime never spends more than about half the CPU on collecting to
// honour it, so a host whose live state outgrows it is slower, never
// stuck: raise it there.
const DefaultMemoryLimit = 256 << 20

// ParseMemoryLimit reads a size: bytes, or a number with one of the
// suffixes KiB, MiB, GiB ("256MiB"); "0" or "off" means no limit
// (math.MaxInt64).
func ParseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return math.MaxInt64, nil
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = n, m
			break
		}
	}
	s = strings.TrimSuffix(s, "B")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory limit %q: want a size such as 256MiB, or off", s)
	}
	return n * mult, nil
}

// ApplyMemoryLimit sets the runtime's soft memory limit: value when it is
// not empty, else DefaultMemoryLimit unless the GOMEMLIMIT environment
// variable has set one already (getenv looks it up). It returns the limit
// in force.
func ApplyMemoryLimit(value string, getenv func(string) string) (int64, error) {
	if value == "" {
		if getenv("GOMEMLIMIT") != "" {
			return debug.SetMemoryLimit(-1), nil // the runtime read it at start
		}
		debug.SetMemoryLimit(DefaultMemoryLimit)
		return DefaultMemoryLimit, nil
	}
	n, err := ParseMemoryLimit(value)
	if err != nil {
		return 0, err
	}
	debug.SetMemoryLimit(n)
	return n, nil
}
