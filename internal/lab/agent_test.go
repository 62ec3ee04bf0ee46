package lab

import (
	"slices"
	"testing"
)

// TestExecEnvNamesTheHostsAgent: `serval-lab exec HOST -- servalctl node
// status` must ask HOST's agent, whose socket is not at the default path.
func TestExecEnvNamesTheHostsAgent(t *testing.T) {
	l := &Lab{Name: "t", Dir: "/run/serval-lab/t", State: State{Topology: &Topology{
		Hosts:     []Host{{Name: "host1"}, {Name: "host2"}},
		Workloads: []Workload{{Name: "A"}},
	}}}
	base := []string{"PATH=/bin", "SERVAL_STATUS_SOCKET=/elsewhere.sock"}
	tests := []struct {
		member string
		want   []string
	}{
		{"host1", []string{"PATH=/bin", "SERVAL_STATUS_SOCKET=/run/serval-lab/t/agents/host1.sock"}},
		{"host2", []string{"PATH=/bin", "SERVAL_STATUS_SOCKET=/run/serval-lab/t/agents/host2.sock"}},
		{"A", base},
		{"router", base},
	}
	for _, tt := range tests {
		if got := l.ExecEnv(tt.member, base); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.member, got, tt.want)
		}
	}
}
