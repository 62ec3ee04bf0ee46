package ipamgc

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the collector's Prometheus metrics. The "kind" label is
// "address", "block" or "node".
type Metrics struct {
	// Candidates: what is waiting for its grace period (addresses whose
	// pod is gone, empty blocks, nodes that were deleted), as of the
	// last scan.
	Candidates *prometheus.GaugeVec
	// Reclaimed counts what was given back.
	Reclaimed *prometheus.CounterVec
	// Errors counts failed operations, by "op" (scan, release-address,
	// release-block, release-node, get-pod, get-node, list-pods).
	Errors *prometheus.CounterVec
	// Scans counts completed scans.
	Scans prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Candidates: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "serval", Subsystem: "ipam_gc", Name: "candidates",
			Help: "IPAM resources waiting for the grace period before they are given back, by kind (address, block, node)."}, []string{"kind"}),
		Reclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "serval", Subsystem: "ipam_gc", Name: "reclaimed_total",
			Help: "IPAM resources given back, by kind (address, block, node)."}, []string{"kind"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "serval", Subsystem: "ipam_gc", Name: "errors_total",
			Help: "Failed IPAM garbage collection operations, by operation."}, []string{"op"}),
		Scans: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "serval", Subsystem: "ipam_gc", Name: "scans_total",
			Help: "Completed scans of the IPAM state."}),
	}
	for _, k := range []string{kindAddress, kindBlock, kindNode} {
		m.Candidates.WithLabelValues(k)
		m.Reclaimed.WithLabelValues(k)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, col := range []prometheus.Collector{m.Candidates, m.Reclaimed, m.Errors, m.Scans} {
		if err := reg.Register(col); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering the IPAM garbage collector's metrics: %w", err)
	}
	return m, nil
}

const (
	kindAddress = "address"
	kindBlock   = "block"
	kindNode    = "node"
)
