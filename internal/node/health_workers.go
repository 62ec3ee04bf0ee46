package node

import (
	"time"

	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/nodestatus"
)

// Names of the workers /liveness watches (see nodestatus).
const (
	WorkerSyncer      = nodestatus.WorkerSyncer
	WorkerCalculation = nodestatus.WorkerCalculation
	WorkerDataplane   = nodestatus.WorkerDataplane
	WorkerBGP         = nodestatus.WorkerBGP
	WorkerBGPSpeaker  = nodestatus.WorkerBGPSpeaker
	WorkerOverlay     = nodestatus.WorkerOverlay
)

// DefaultWorkerTimeout is how long a worker may go without turning before
// /liveness is red. A cold start at 100,000 endpoints programs the kernel
// in a few seconds, so this is far beyond any legitimate pause.
const DefaultWorkerTimeout = 90 * time.Second

// DefaultHeartbeatInterval is how often an idle worker beats.
const DefaultHeartbeatInterval = time.Second

// speakerProbeInterval is how often the speaker is asked for its sessions
// (its liveness beat and BGP readiness).
const speakerProbeInterval = 5 * time.Second

// workers are the liveness handles of one Run.
type workers struct {
	syncer, calc, dataplane, bgp, speaker, overlay *Worker
}

func (a *Agent) timeout(name string) time.Duration {
	if d, ok := a.cfg.HealthTimeouts[name]; ok && d > 0 {
		return d
	}
	return DefaultWorkerTimeout
}

func (a *Agent) heartbeatInterval() time.Duration {
	if a.cfg.HeartbeatInterval > 0 {
		return a.cfg.HeartbeatInterval
	}
	return DefaultHeartbeatInterval
}

// registerWorkers registers the workers this agent runs.
func (a *Agent) registerWorkers() workers {
	h := a.Health
	w := workers{
		syncer:    h.Register(WorkerSyncer, a.timeout(WorkerSyncer)),
		calc:      h.RegisterCallback(WorkerCalculation, a.timeout(WorkerCalculation)),
		dataplane: h.Register(WorkerDataplane, a.timeout(WorkerDataplane)),
	}
	if a.d.Speaker != nil {
		w.bgp = h.Register(WorkerBGP, a.timeout(WorkerBGP))
		w.speaker = h.Register(WorkerBGPSpeaker, a.timeout(WorkerBGPSpeaker))
		h.WatchBGP(a.cfg.BGPGrace)
	}
	if a.d.Overlay != nil {
		w.overlay = h.Register(WorkerOverlay, a.timeout(WorkerOverlay))
	}
	return w
}

// statusTap lets readiness follow the syncer (a resync makes the host
// unready until the graph has the whole state again) and times each call
// into the calculation graph for liveness.
type statusTap struct {
	*calc.Graph
	h *Health
	w *Worker
}

func (t *statusTap) OnStatus(s datastore.Status) {
	t.w.Enter()
	t.Graph.OnStatus(s)
	t.w.Leave()
	t.h.SetInSync(s == datastore.InSync)
}

func (t *statusTap) OnUpdates(us []datastore.Update) {
	t.w.Enter()
	t.Graph.OnUpdates(us)
	t.w.Leave()
}
