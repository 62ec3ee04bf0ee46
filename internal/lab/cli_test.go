package lab

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/roottest"
)

// TestPassThroughFlags: the commands that hand their arguments on
// (servalctl, kubectl) still honour serval-lab's own flags given before
// their name, and a lab without a Kubernetes API server says so.
func TestPassThroughFlags(t *testing.T) {
	roottest.NeedRoot(t, "serval-lab's commands on a lab need root")
	root := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"servalctl", []string{"--run-root", root, "--name", "nolab", "servalctl", "get", "nodes"}, filepath.Join(root, "nolab", "state.json")},
		{"kubectl, flags with =", []string{"--run-root=" + root, "--name=other", "-v", "kubectl", "get", "pods"}, filepath.Join(root, "other", "state.json")},
		{"kubeconfig", []string{"--run-root", root, "--name", "third", "kubeconfig"}, filepath.Join(root, "third", "state.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), tt.args, &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("serval-lab %s: exit %d, stderr %q; want a failure naming %s", strings.Join(tt.args, " "), code, errb.String(), tt.want)
			}
		})
	}
}
