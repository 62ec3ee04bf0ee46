package node

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// runtimeCollectors are the Go runtime's and the process's metrics, which
// FelixConfiguration's prometheusGoMetricsEnabled and
// prometheusProcessMetricsEnabled turn on and off.
type runtimeCollectors struct {
	mu         sync.Mutex
	goC, procC prometheus.Collector // nil while off
}

// SetRuntimeCollectors registers or unregisters the Go and process
// collectors.
func (m *Metrics) SetRuntimeCollectors(goOn, procOn bool) {
	r := &m.runtime
	r.mu.Lock()
	defer r.mu.Unlock()
	toggle(m.Registry, &r.goC, goOn, func() prometheus.Collector { return collectors.NewGoCollector() })
	toggle(m.Registry, &r.procC, procOn, func() prometheus.Collector {
		return collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	})
}

func toggle(reg *prometheus.Registry, c *prometheus.Collector, on bool, mk func() prometheus.Collector) {
	switch {
	case on && *c == nil:
		*c = mk()
		reg.MustRegister(*c)
	case !on && *c != nil:
		reg.Unregister(*c)
		*c = nil
	}
}
