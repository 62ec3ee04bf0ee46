package api

import (
	"strings"
	"testing"
)

func TestHealthTimeoutOverrides(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string // "" when valid
	}{
		{`[{"name": "dataplane", "timeout": "30s"}]`, ""},
		{`[{"name": "bgp-speaker", "timeout": "2m"}]`, ""},
		{`[{"name": "InternalDataplaneMainLoop", "timeout": "30s"}, {"name": "CalculationGraph", "timeout": "1m"}]`, ""},
		{`[{"name": "BPFEndpointManager", "timeout": "30s"}]`, `spec.healthTimeoutOverrides[0].name: "BPFEndpointManager" is not one of serval-node's workers`},
		{`[{"timeout": "30s"}]`, "spec.healthTimeoutOverrides[0].name"},
		{`[{"name": "syncer", "timeout": "0s"}]`, "spec.healthTimeoutOverrides[0].timeout"},
		{`[{"name": "syncer", "timeout": "soon"}]`, "spec.healthTimeoutOverrides[0].timeout"},
	}
	for _, tt := range tests {
		docs, err := Load("test", []byte(`{"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
			"metadata": {"name": "default"}, "spec": {"healthTimeoutOverrides": `+tt.spec+`}}`), nil)
		if err == nil && len(docs) == 1 {
			err = Validate(docs[0].Resource)
		}
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.spec, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one with %q", tt.spec, err, tt.wantErr)
		}
	}
}
