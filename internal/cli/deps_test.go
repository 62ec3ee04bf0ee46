package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServalctlDoesNotLinkTheAgent keeps servalctl a small client: it reads
// the agent's status through internal/nodestatus, and must not pull in the
// agent, its BGP speaker or its nftables dataplane.
func TestServalctlDoesNotLinkTheAgent(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/servalnet/serval/cmd/servalctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/servalctl: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/servalnet/serval/internal/node",
		"github.com/servalnet/serval/internal/routing",
		"github.com/servalnet/serval/internal/dataplane",
		"github.com/osrg/gobgp/",
		"github.com/google/nftables",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) || strings.HasPrefix(dep, f+"/") {
				t.Errorf("servalctl links %s", dep)
			}
		}
	}
}
