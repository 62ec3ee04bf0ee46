package dataplane

import (
	"fmt"

	"github.com/google/nftables/expr"

	"github.com/servalnet/serval/internal/hoststate"
)

// defaultLogPrefix is the Log action's prefix when the configuration has
// none (calc passes Calico's "calico-packet" by default).
const defaultLogPrefix = "serval-packet"

// maxLogPrefix is the longest log prefix the kernel takes (NF_LOG_PREFIXLEN - 1).
const maxLogPrefix = 127

// logAction is what a policy's Log rule does: log to the kernel log with
// the configured prefix and go on. With logActionRateLimit set, a
// "limit rate" match comes first: a packet over the rate skips the log
// (and still goes on to the next rule), so one rule on busy traffic
// cannot flood the kernel log.
func logAction(cfg hoststate.Config) []stmt {
	prefix := cfg.LogPrefix
	if prefix == "" {
		prefix = defaultLogPrefix
	}
	if len(prefix) > maxLogPrefix {
		// Validation refuses longer ones; one written behind its back
		// must not fail the whole transaction.
		prefix = prefix[:maxLogPrefix]
	}
	if cfg.LogRate.Rate == 0 {
		return []stmt{sLog{Prefix: prefix}}
	}
	return []stmt{mLimit{RateLimit: cfg.LogRate}, sLog{Prefix: prefix}}
}

// mLimit: limit rate N/unit burst B packets.
type mLimit struct{ hoststate.RateLimit }

func (m mLimit) text() string {
	return fmt.Sprintf("limit rate %d/%s burst %d packets", m.Rate, m.Unit, m.Burst)
}

var limitUnits = map[string]expr.LimitTime{
	"second": expr.LimitTimeSecond, "minute": expr.LimitTimeMinute, "hour": expr.LimitTimeHour,
	"day": expr.LimitTimeDay,
}

func (m mLimit) kernel(*builder) ([]expr.Any, error) {
	u, ok := limitUnits[m.Unit]
	if !ok {
		return nil, fmt.Errorf("unknown rate unit %q", m.Unit)
	}
	return []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(m.Rate), Unit: u, Burst: m.Burst}}, nil
}
