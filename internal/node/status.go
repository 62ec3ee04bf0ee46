package node

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/servalnet/serval/internal/nodestatus"
	"github.com/servalnet/serval/internal/routing"
)

// The report types live in internal/nodestatus so that servalctl can read
// them without linking the agent; these names keep the agent's code short.
type (
	StatusReport = nodestatus.StatusReport
	BGPStatus    = nodestatus.BGPStatus
	Report       = nodestatus.Report
)

// DefaultStatusSocket is where serval-node answers `servalctl node status`.
const DefaultStatusSocket = nodestatus.DefaultSocket

func (a *Agent) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		rep := StatusReport{Node: a.cfg.NodeName, Health: a.Health.Report(), Rejected: a.Rejected.List()}
		if a.d.Speaker != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			peers, err := a.d.Speaker.Status(ctx)
			rep.BGP = &BGPStatus{Peers: peerStatuses(peers)}
			if err != nil {
				rep.BGP.Error = err.Error()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	})
	return mux
}

// peerStatuses converts the speaker's view of its sessions to the report's.
func peerStatuses(ps []routing.PeerStatus) []nodestatus.PeerStatus {
	out := make([]nodestatus.PeerStatus, 0, len(ps))
	for _, p := range ps {
		out = append(out, nodestatus.PeerStatus{
			Address: p.Address, Port: p.Port, Type: string(p.Type), State: p.State, Since: p.Since,
			Info: p.Info, RoutesReceived: p.RoutesReceived, RoutesAdvertised: p.RoutesAdvertised,
			ASN: p.ASN, Origin: p.Origin,
		})
	}
	return out
}
