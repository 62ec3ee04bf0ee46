package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/nodestatus"
)

func TestPrintStatusSaysWhy(t *testing.T) {
	since := time.Date(2026, 1, 2, 14, 5, 1, 0, time.Local)
	mesh := nodestatus.PeerStatus{Address: "172.17.8.102", Type: "node-to-node mesh", State: "start", Info: "Active"}
	tests := []struct {
		name string
		rep  nodestatus.StatusReport
		want []string
	}{
		{"ready", nodestatus.StatusReport{Node: "h1", Health: nodestatus.Report{Live: true, Ready: true, InSync: true, Programmed: true},
			BGP: &nodestatus.BGPStatus{Peers: []nodestatus.PeerStatus{{Address: "172.17.8.102", Info: "Established"}}}},
			[]string{"Serval process is running (node h1).", "Ready: yes (datastore in sync; dataplane programmed; 1 of 1 BGP sessions established)"}},
		{"a session down", nodestatus.StatusReport{Node: "h1", Health: nodestatus.Report{Live: true, InSync: true, Programmed: true,
			Reasons: []string{"BGP session to 172.17.8.102 (node-to-node mesh) is Active since 14:05:01"}},
			BGP: &nodestatus.BGPStatus{Peers: []nodestatus.PeerStatus{mesh}}},
			[]string{"Ready: no: BGP session to 172.17.8.102 (node-to-node mesh) is Active since 14:05:01; datastore in sync; dataplane programmed; 0 of 1 BGP sessions established"}},
		{"a worker stuck", nodestatus.StatusReport{Node: "h1", Health: nodestatus.Report{InSync: true,
			Reasons: []string{"worker dataplane is stuck: last turned at 14:05:01 (timeout 1m30s)"},
			Workers: []nodestatus.Worker{{Name: "syncer"}, {Name: "dataplane", Stuck: true, Since: since}}}},
			[]string{"Serval process is stuck (dataplane since 14:05:01) (node h1).", "Ready: no: worker dataplane is stuck", "BGP is disabled"}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		printStatus(&b, &tt.rep)
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tt.name, w, b.String())
			}
		}
	}
}
