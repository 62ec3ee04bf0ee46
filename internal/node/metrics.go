package node

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the agent's Prometheus metrics, in a registry of their own
// so that tests can create as many agents as they like.
type Metrics struct {
	Registry       *prometheus.Registry
	LocalEndpoints prometheus.Gauge
	ActivePolicies prometheus.Gauge
	ApplySeconds   prometheus.Histogram
	Resyncs        prometheus.Counter
	Errors         *prometheus.CounterVec
	// Rejected counts, by kind, the objects read from the datastore that
	// failed validation and were skipped or failed closed.
	Rejected *prometheus.GaugeVec
	runtime  runtimeCollectors // metrics_runtime.go
}

// NewMetrics creates and registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		LocalEndpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "serval_local_endpoints", Help: "Workload and host endpoints on this host.",
		}),
		ActivePolicies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "serval_active_policies", Help: "Policies that select at least one endpoint on this host.",
		}),
		ApplySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "serval_dataplane_apply_seconds",
			Help:    "Time to program one batch of changes into the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}),
		Resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serval_dataplane_resyncs_total", Help: "Full reads of the kernel's state to repair drift.",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serval_errors_total", Help: "Errors by where they happened.",
		}, []string{"component"}),
	}
	m.Rejected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "serval_rejected_objects", Help: "Objects read from the datastore that failed validation (skipped or failed closed), by kind.",
	}, []string{"kind"})
	m.Registry.MustRegister(m.LocalEndpoints, m.ActivePolicies, m.ApplySeconds, m.Resyncs, m.Errors, m.Rejected)
	m.SetRuntimeCollectors(true, true)
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// setRejected sets serval_rejected_objects from the counts by kind.
func (m *Metrics) setRejected(byKind map[string]int) {
	m.Rejected.Reset()
	for k, n := range byKind {
		m.Rejected.WithLabelValues(k).Set(float64(n))
	}
}
