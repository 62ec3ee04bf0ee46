package bgp

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const readinessTopo = `
hosts:
  - {name: h1, address: 172.30.7.11/24}
  - {name: h2, address: 172.30.7.12/24}
`

// TestReadinessCoversSessions: a mesh session that stays down makes its
// host not ready after the grace period, and both /readiness and
// servalctl node status say which session and since when; once the peer
// is back the host is ready again.
func TestReadinessCoversSessions(t *testing.T) {
	needRoot(t)
	// The lab's agents inherit the environment: a short grace keeps the test short.
	t.Setenv("SERVAL_BGP_READY_GRACE", "3s")
	l := upLab(t, "ready", readinessTopo, "open.yaml")
	h2 := hostAddr(l, "h2").String()
	nodeStatus := func() string {
		out, _ := exec.Command(filepath.Join(binDir, "servalctl"), "node", "status", "--socket", l.AgentSocket("h1")).CombinedOutput()
		return string(out)
	}
	if out := nodeStatus(); !strings.Contains(out, "Ready: yes") {
		t.Fatalf("h1 not ready after lab up:\n%s", out)
	}

	if err := l.AgentStop("h2", false); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	want := "BGP session to " + h2 + " (node-to-node mesh) is "
	took := eventually(t, 30*time.Second, "h1 not ready, naming its session to h2", func() error {
		rep := status(t, l, "h1")
		if rep.Health.Ready {
			return fmt.Errorf("h1 is still ready: %+v", rep.Health)
		}
		if r := strings.Join(rep.Health.Reasons, "; "); !strings.Contains(r, want) || !strings.Contains(r, " since ") {
			return fmt.Errorf("h1's reasons %q do not name the session to h2", r)
		}
		return nil
	})
	if took < 3*time.Second {
		t.Errorf("h1 not ready %s after h2's agent stopped, within the 3s grace", took)
	}
	if out := nodeStatus(); !strings.Contains(out, "Ready: no: "+want) || !strings.Contains(out, "datastore in sync; dataplane programmed") {
		t.Errorf("servalctl node status on h1 does not say why it is not ready:\n%s", out)
	}
	if rep := status(t, l, "h1"); !rep.Health.Live {
		t.Errorf("h1 not live while a session is down (it should be only not ready): %+v", rep.Health)
	}
	t.Logf("h1 not ready %s after h2's agent stopped", time.Since(stopped).Round(100*time.Millisecond))

	if err := l.AgentStart(t.Context(), "h2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "h1 ready again", func() error {
		if out := nodeStatus(); !strings.Contains(out, "Ready: yes") {
			return fmt.Errorf("h1:\n%s", out)
		}
		return nil
	})
}
