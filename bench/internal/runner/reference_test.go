package runner

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestReferenceGolden: the commands that build each reference dataplane,
// as `servalbench reference --print` shows them, are the golden file's.
// A change to a reference changes what every dataplane ratio is a ratio
// to; it has to be deliberate (go test -update) and show in review.
func TestReferenceGolden(t *testing.T) {
	for _, kind := range ReferenceKinds() {
		t.Run(kind, func(t *testing.T) {
			var b bytes.Buffer
			if err := PrintReference(&b, kind); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "reference."+kind+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading %s (go test -update writes it): %v", golden, err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("%s reference differs from %s:\n%s", kind, golden, got)
			}
		})
	}
}

// TestReferencePlan: every namespace a plan uses is one it creates (so
// the clean-up removes everything), and the server's address is one the
// plan assigns in the server's namespace.
func TestReferencePlan(t *testing.T) {
	for _, kind := range referenceKinds {
		p, err := referencePlan(kind, "t")
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		created := map[string]bool{}
		for _, n := range p.namespaces {
			created[n] = true
		}
		if !created[p.client] || !created[p.server] {
			t.Errorf("%s: client %s or server %s not among the created namespaces %v", kind, p.client, p.server, p.namespaces)
		}
		assigned := false
		for _, c := range p.cmds {
			line := strings.Join(c, " ")
			for i, a := range c {
				if (a == "-n" || a == "netns") && i+1 < len(c) && c[i+1] != "add" && c[i+1] != "exec" && !created[c[i+1]] {
					t.Errorf("%s: %q uses namespace %s, which the plan does not create", kind, line, c[i+1])
				}
			}
			if strings.HasPrefix(line, "ip -n "+p.server+" addr add "+p.serverIP+"/") {
				assigned = true
			}
		}
		if !assigned {
			t.Errorf("%s: the server address %s is never assigned in %s", kind, p.serverIP, p.server)
		}
	}
	if _, err := referencePlan("geneve", "t"); err == nil || !strings.Contains(err.Error(), "geneve") {
		t.Errorf("unknown kind: err = %v, want one naming it", err)
	}
}
