package calc

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
)

// Calico's defaults for the FelixConfiguration fields below.
const (
	defaultLogRateBurst = 5
)

// defaultInterfaceExclude is Calico's interfaceExclude default: kube-proxy's
// IPVS dummy interface holds every service address and is no host endpoint.
var defaultInterfaceExclude = []string{"kube-ipvs0"}

// applyDataplaneFields merges the FelixConfiguration fields that the
// nftables dataplane enforces beyond the basic ones into cfg: a field fc
// sets overrides what an earlier object set.
func (g *Graph) applyDataplaneFields(cfg *hoststate.Config, fc *api.FelixConfiguration) {
	s := &fc.Spec
	if s.LogActionRateLimit != nil {
		if r, ok := parseRate(*s.LogActionRateLimit); ok {
			cfg.LogRate.Rate, cfg.LogRate.Unit = r.Rate, r.Unit
		} else {
			g.log.Error("ignoring an invalid logActionRateLimit", "felixConfiguration", fc.Name, "value", *s.LogActionRateLimit)
		}
	}
	if s.LogActionRateLimitBurst != nil && *s.LogActionRateLimitBurst >= 0 {
		cfg.LogRate.Burst = uint32(*s.LogActionRateLimitBurst)
	}
	// Calico's iptablesFilterDenyAction is the older name of the same
	// setting; nftablesFilterDenyAction wins where both are set.
	if s.IptablesFilterDenyAction != "" {
		cfg.DenyAction = s.IptablesFilterDenyAction
	}
	if s.NftablesFilterDenyAction != "" {
		cfg.DenyAction = s.NftablesFilterDenyAction
	}
	switch s.IPForwarding {
	case "Enabled":
		cfg.IPForwardingDisabled = false
	case "Disabled":
		cfg.IPForwardingDisabled = true
	}
	switch s.WorkloadSourceSpoofing {
	case "Any":
		cfg.AllowSourceSpoofing = true
	case "Disabled":
		cfg.AllowSourceSpoofing = false
	}
	if s.NATOutgoingAddress != "" {
		if a, err := netip.ParseAddr(s.NATOutgoingAddress); err == nil && a.Is4() {
			cfg.NATOutgoingAddress = a
		} else {
			g.log.Error("ignoring an invalid natOutgoingAddress", "felixConfiguration", fc.Name, "value", s.NATOutgoingAddress)
		}
	}
	if s.InterfaceExclude != "" {
		cfg.InterfaceExclude = parseInterfaceExclude(s.InterfaceExclude, func(bad string) {
			g.log.Error("ignoring an invalid interfaceExclude entry", "felixConfiguration", fc.Name, "entry", bad)
		})
	}
	// iptablesRefreshInterval is the same resync for Calico's iptables
	// dataplane; Serval's table takes it where nftablesRefreshInterval is
	// not set (nftablesRefreshInterval wins, like the deny action above).
	for _, f := range []struct {
		from *api.Duration
		to   **time.Duration
	}{
		{s.RouteRefreshInterval, &cfg.RouteRefreshInterval},
		{s.InterfaceRefreshInterval, &cfg.InterfaceRefreshInterval},
		{s.IptablesRefreshInterval, &cfg.NftablesRefreshInterval},
		{s.NftablesRefreshInterval, &cfg.NftablesRefreshInterval},
	} {
		if f.from != nil && f.from.Duration >= 0 {
			d := f.from.Duration
			*f.to = &d
		}
	}
}

// parseRate reads Calico's "N/second" (minute, hour, day).
func parseRate(s string) (hoststate.RateLimit, bool) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return hoststate.RateLimit{}, false
	}
	v, err := strconv.ParseUint(n, 10, 32)
	if err != nil || v == 0 {
		return hoststate.RateLimit{}, false
	}
	switch unit {
	case "second", "minute", "hour", "day":
		return hoststate.RateLimit{Rate: uint32(v), Unit: unit}, true
	}
	return hoststate.RateLimit{}, false
}

// parseInterfaceExclude splits Calico's comma-separated interfaceExclude:
// names, or regular expressions between slashes. An entry that is neither
// a valid name nor a valid expression is reported and left out.
func parseInterfaceExclude(s string, bad func(string)) []string {
	out := []string{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if len(e) >= 2 && strings.HasPrefix(e, "/") && strings.HasSuffix(e, "/") {
			if _, err := regexp.Compile(e[1 : len(e)-1]); err != nil {
				bad(e)
				continue
			}
		} else if len(e) > 15 || strings.ContainsAny(e, "/ \t\n") {
			bad(e)
			continue
		}
		out = append(out, e)
	}
	return out
}
