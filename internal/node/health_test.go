package node

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHealth(func() time.Time { return now }, 30*time.Second)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		name            string
		do              func()
		live, readiness int
	}{
		{"starting", func() {}, 200, 503},
		{"in sync, not programmed", func() { h.SetInSync(true) }, 200, 503},
		{"programmed", func() { h.SetProgrammed(nil) }, 200, 200},
		{"apply failed", func() { h.SetProgrammed(errors.New("netlink: busy")) }, 200, 503},
		{"apply recovered", func() { h.SetProgrammed(nil) }, 200, 200},
		{"resyncing", func() { h.SetInSync(false) }, 200, 503},
		{"back in sync", func() { h.SetInSync(true) }, 200, 200},
		{"main loop stalled", func() { now = now.Add(time.Minute) }, 503, 503},
		{"main loop turns again", func() { h.Beat() }, 200, 200},
	}
	for _, s := range steps {
		s.do()
		if got := status("/liveness"); got != s.live {
			t.Errorf("%s: /liveness %d, want %d", s.name, got, s.live)
		}
		if got := status("/readiness"); got != s.readiness {
			t.Errorf("%s: /readiness %d, want %d", s.name, got, s.readiness)
		}
	}
}
