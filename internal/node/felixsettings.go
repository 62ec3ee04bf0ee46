package node

import (
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/nodestatus"
)

// Serval's defaults for its own endpoints. Calico leaves health and
// metrics off unless FelixConfiguration turns them on; serval-node serves
// both on loopback by default (probes and the lab rely on /readiness), and
// FelixConfiguration's healthEnabled/prometheusMetricsEnabled: false turn
// them off.
const (
	DefaultHealthHost  = "127.0.0.1"
	DefaultHealthPort  = 9099
	DefaultMetricsHost = "127.0.0.1"
	DefaultMetricsPort = 9091
)

// selfSettings is how serval-node serves its own endpoints: what its
// command line says, overridden by FelixConfiguration where the command
// line did not fix a value.
type selfSettings struct {
	Health, Metrics           string // listen addresses; "" is off
	GoMetrics, ProcessMetrics bool
	Timeouts                  map[string]time.Duration // by worker; absent: DefaultWorkerTimeout
}

// endpoint is one listen address taken apart so that FelixConfiguration can
// change its parts.
type endpoint struct {
	on   bool
	host string
	port int
}

func splitListen(addr, defHost string, defPort int) endpoint {
	if addr == "" {
		return endpoint{host: defHost, port: defPort}
	}
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		// Not host:port: keep it whole as the host part; listening on it
		// fails and says so.
		return endpoint{on: true, host: addr, port: defPort}
	}
	return endpoint{on: true, host: host, port: p}
}

func (e endpoint) addr() string {
	if !e.on {
		return ""
	}
	return net.JoinHostPort(e.host, strconv.Itoa(e.port))
}

// settingsFor merges the command line (cfg) with FelixConfiguration
// "default" and then "node.<name>" (either may be nil): a field the node's
// object sets wins over the default's, and a listen address given on the
// command line or in the environment (cfg.HealthListenFixed,
// cfg.MetricsListenFixed) wins over both, as Felix's environment wins over
// the datastore.
func settingsFor(cfg Config, fcs ...*api.FelixConfiguration) selfSettings {
	health := splitListen(cfg.HealthListen, DefaultHealthHost, DefaultHealthPort)
	metrics := splitListen(cfg.MetricsListen, DefaultMetricsHost, DefaultMetricsPort)
	s := selfSettings{GoMetrics: true, ProcessMetrics: true, Timeouts: maps.Clone(cfg.HealthTimeouts)}
	if s.Timeouts == nil {
		s.Timeouts = map[string]time.Duration{}
	}
	for _, fc := range fcs {
		if fc == nil {
			continue
		}
		f := &fc.Spec
		if !cfg.HealthListenFixed {
			if f.HealthEnabled != nil {
				health.on = *f.HealthEnabled
			}
			if f.HealthHost != nil && *f.HealthHost != "" {
				health.host = *f.HealthHost
			}
			if f.HealthPort != nil {
				health.port = *f.HealthPort
			}
		}
		if !cfg.MetricsListenFixed {
			if f.PrometheusMetricsEnabled != nil {
				metrics.on = *f.PrometheusMetricsEnabled
			}
			if f.PrometheusMetricsHost != "" {
				metrics.host = f.PrometheusMetricsHost
			}
			if f.PrometheusMetricsPort != nil {
				metrics.port = *f.PrometheusMetricsPort
			}
		}
		if f.PrometheusGoMetricsEnabled != nil {
			s.GoMetrics = *f.PrometheusGoMetricsEnabled
		}
		if f.PrometheusProcessMetricsEnabled != nil {
			s.ProcessMetrics = *f.PrometheusProcessMetricsEnabled
		}
		if len(f.HealthTimeoutOverrides) > 0 {
			// The node's list replaces the default's, as a list field.
			s.Timeouts = maps.Clone(cfg.HealthTimeouts)
			if s.Timeouts == nil {
				s.Timeouts = map[string]time.Duration{}
			}
			for _, o := range f.HealthTimeoutOverrides {
				if w, ok := nodestatus.WorkerName(o.Name); ok && o.Timeout.Duration > 0 {
					s.Timeouts[w] = o.Timeout.Duration
				}
			}
		}
	}
	s.Health, s.Metrics = health.addr(), metrics.addr()
	return s
}
