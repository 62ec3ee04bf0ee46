package nodestatus

import (
	"sort"
	"strings"
)

// Names of serval-node's workers, the loops /liveness watches. They are
// also the names FelixConfiguration's healthTimeoutOverrides takes.
const (
	WorkerSyncer      = "syncer"      // follows the datastore for the calculation graph, BGP and the overlay
	WorkerCalculation = "calculation" // the calculation graph (called by the syncer)
	WorkerDataplane   = "dataplane"   // programs the kernel
	WorkerBGP         = "bgp"         // turns it into the speaker's configuration
	WorkerBGPSpeaker  = "bgp-speaker" // the embedded speaker's own goroutine
	WorkerOverlay     = "overlay"     // programs the VXLAN/IPIP overlay
)

// workerAliases maps Felix's health reporter names to Serval's workers,
// so that a Calico manifest's healthTimeoutOverrides means the same loop.
var workerAliases = map[string]string{
	"InternalDataplaneMainLoop": WorkerDataplane,
	"CalculationGraph":          WorkerCalculation,
}

var workers = []string{WorkerSyncer, WorkerCalculation, WorkerDataplane, WorkerBGP, WorkerBGPSpeaker, WorkerOverlay}

// WorkerName resolves a healthTimeoutOverrides name (Serval's or Felix's)
// to a worker; ok is false for a name that is neither.
func WorkerName(name string) (worker string, ok bool) {
	if w, ok := workerAliases[name]; ok {
		return w, true
	}
	for _, w := range workers {
		if w == name {
			return w, true
		}
	}
	return "", false
}

// WorkerNames lists the names WorkerName takes, for error messages.
func WorkerNames() string {
	names := append([]string{}, workers...)
	for a := range workerAliases {
		names = append(names, a)
	}
	sort.Strings(names[len(workers):])
	return strings.Join(names, ", ")
}
