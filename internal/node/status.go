package node

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/servalnet/serval/internal/admission"
	"github.com/servalnet/serval/internal/routing"
)

// StatusReport is what the status socket's /status answers and what
// `servalctl node status` prints.
type StatusReport struct {
	Node   string     `json:"node"`
	Health Report     `json:"health"`
	BGP    *BGPStatus `json:"bgp,omitempty"` // nil when BGP is off
	// Rejected are the objects read from the datastore that failed
	// validation: skipped, or (policies) failed closed.
	Rejected []admission.Rejected `json:"rejected,omitempty"`
}

// BGPStatus lists the sessions of the embedded speaker.
type BGPStatus struct {
	Peers []routing.PeerStatus `json:"peers"`
	Error string               `json:"error,omitempty"`
}

func (a *Agent) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		rep := StatusReport{Node: a.cfg.NodeName, Health: a.Health.Report(), Rejected: a.Rejected.List()}
		if a.d.Speaker != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			peers, err := a.d.Speaker.Status(ctx)
			rep.BGP = &BGPStatus{Peers: peers}
			if err != nil {
				rep.BGP.Error = err.Error()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	})
	return mux
}

// DefaultStatusSocket is where serval-node answers `servalctl node status`.
const DefaultStatusSocket = "/var/run/serval/node.sock"
