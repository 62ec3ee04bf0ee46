package node

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/nodestatus"
)

func TestHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHealth(func() time.Time { return now })
	syncer := h.Register(WorkerSyncer, 30*time.Second)
	calcW := h.RegisterCallback(WorkerCalculation, 30*time.Second)
	dp := h.Register(WorkerDataplane, 60*time.Second)
	h.WatchBGP(time.Minute)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	get := func(path string) (int, nodestatus.Report) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r nodestatus.Report
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("%s: decoding the body: %v", path, err)
		}
		return resp.StatusCode, r
	}
	beatAll := func() { syncer.Beat(); dp.Beat() }
	established := nodestatus.PeerStatus{Address: "172.17.8.102", Type: "node-to-node mesh", State: "up", Info: "Established"}
	active := established
	active.State, active.Info = "start", "Active"
	steps := []struct {
		name            string
		do              func()
		live, readiness int
		reason          string // in the body of /readiness (or /liveness when not live)
	}{
		{"starting", func() {}, 200, 503, "datastore not in sync yet"},
		{"in sync, not programmed", func() { h.SetInSync(true) }, 200, 503, "dataplane not programmed yet"},
		{"programmed", func() { h.SetProgrammed(nil) }, 200, 200, ""},
		{"apply failed", func() { h.SetProgrammed(errors.New("netlink: busy")) }, 200, 503, "last dataplane apply failed: netlink: busy"},
		{"apply recovered", func() { h.SetProgrammed(nil) }, 200, 200, ""},
		{"resyncing", func() { h.SetInSync(false) }, 200, 503, "datastore not in sync yet"},
		{"back in sync", func() { h.SetInSync(true) }, 200, 200, ""},
		{"session down within the grace period", func() { h.SetBGPSessions([]nodestatus.PeerStatus{active}, nil) }, 200, 200, ""},
		{"session down past the grace period", func() {
			now = now.Add(25 * time.Second)
			beatAll()
			h.SetBGPSessions([]nodestatus.PeerStatus{active}, nil)
			now = now.Add(40 * time.Second)
			beatAll()
		},
			200, 503, "BGP session to 172.17.8.102 (node-to-node mesh) is Active since " + clock(time.Unix(1000, 0))},
		{"session up", func() { h.SetBGPSessions([]nodestatus.PeerStatus{established}, nil) }, 200, 200, ""},
		{"speaker did not answer: the last answer stands", func() { h.SetBGPSessions(nil, errors.New("deadline exceeded")) }, 200, 200, ""},
		{"idle callback worker is live", func() { now = now.Add(45 * time.Second); beatAll() }, 200, 200, ""},
		{"syncer stalled", func() { now = now.Add(31 * time.Second); dp.Beat() }, 503, 503, "worker syncer is stuck: last turned at " + clock(time.Unix(1000+25+40+45, 0))},
		{"syncer turns again", func() { syncer.Beat() }, 200, 200, ""},
		{"calculation busy within its timeout", func() { calcW.Enter(); now = now.Add(20 * time.Second); beatAll() }, 200, 200, ""},
		{"calculation stuck", func() { now = now.Add(20 * time.Second); beatAll() }, 503, 503, "worker calculation is stuck: busy since "},
		{"calculation returns", func() { calcW.Leave() }, 200, 200, ""},
	}
	for _, s := range steps {
		s.do()
		live, lr := get("/liveness")
		ready, rr := get("/readiness")
		if live != s.live {
			t.Errorf("%s: /liveness %d, want %d (reasons %q)", s.name, live, s.live, lr.Reasons)
		}
		if ready != s.readiness {
			t.Errorf("%s: /readiness %d, want %d (reasons %q)", s.name, ready, s.readiness, rr.Reasons)
		}
		joined := strings.Join(rr.Reasons, "; ")
		if s.reason == "" && joined != "" {
			t.Errorf("%s: reasons %q, want none", s.name, joined)
		}
		if s.reason != "" && !strings.Contains(joined, s.reason) {
			t.Errorf("%s: reasons %q, want one with %q", s.name, joined, s.reason)
		}
		if s.live == 503 {
			stuck := 0
			for _, w := range lr.Workers {
				if w.Stuck {
					stuck++
					if w.Since.IsZero() {
						t.Errorf("%s: stuck worker %s has no since", s.name, w.Name)
					}
				}
			}
			if stuck != 1 {
				t.Errorf("%s: %d workers stuck in %+v, want 1", s.name, stuck, lr.Workers)
			}
		}
	}
}

func TestHealthTimeoutOverride(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHealth(func() time.Time { return now })
	h.Register(WorkerDataplane, time.Minute)
	if !h.SetTimeout(WorkerDataplane, 10*time.Second) {
		t.Fatal("SetTimeout: no dataplane worker")
	}
	if h.SetTimeout("nonesuch", time.Second) {
		t.Error("SetTimeout accepted an unknown worker")
	}
	now = now.Add(11 * time.Second)
	if r := h.Report(); r.Live {
		t.Errorf("live 11s after the last beat with a 10s timeout: %+v", r)
	}
}
