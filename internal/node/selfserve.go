package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// selfServer keeps serval-node's own endpoints (health, metrics) and
// worker timeouts as FelixConfiguration says, following it with a syncer
// of its own: a change of address restarts that listener; the rest
// changes in place.
type selfServer struct {
	a   *Agent
	log *slog.Logger

	mu            sync.Mutex // the syncer's callbacks and close
	def, node     *api.FelixConfiguration
	synced        bool
	applied       selfSettings
	health, metrs *http.Server
}

func newSelfServer(a *Agent) *selfServer {
	return &selfServer{a: a, log: a.log.With("part", "self-endpoints")}
}

// start serves what the command line alone says. Run calls it before the
// datastore is followed, so that a fixed address that cannot be listened
// on stops the agent at once, as before FelixConfiguration was followed.
func (s *selfServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apply(settingsFor(s.a.cfg))
}

func (s *selfServer) OnStatus(st datastore.Status) {
	if st != datastore.InSync {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.synced = true
	s.reapply()
}

func (s *selfServer) OnUpdates(us []datastore.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range us {
		fc, _ := u.Object.(*api.FelixConfiguration)
		if u.Type == datastore.Deleted {
			fc = nil
		}
		switch u.Key.Name {
		case felixDefaultName:
			s.def = fc
		case felixNodePrefix + s.a.cfg.NodeName:
			s.node = fc
		}
	}
	if s.synced {
		s.reapply()
	}
}

const (
	felixDefaultName = "default"
	felixNodePrefix  = "node."
)

func (s *selfServer) reapply() {
	if err := s.apply(settingsFor(s.a.cfg, s.def, s.node)); err != nil {
		s.log.Error("serving as FelixConfiguration says", "err", err)
		s.a.Metrics.Errors.WithLabelValues("self-endpoints").Inc()
	}
}

// apply makes the endpoints match want; it returns what failed.
func (s *selfServer) apply(want selfSettings) error {
	var errs []error
	if srv, err := s.relisten(s.health, s.applied.Health, want.Health, s.a.Health.Handler()); err != nil {
		errs = append(errs, fmt.Errorf("health endpoint %s: %w", want.Health, err))
		want.Health = "" // not serving: try again on the next change
		s.health = nil
	} else {
		s.health = srv
	}
	if srv, err := s.relisten(s.metrs, s.applied.Metrics, want.Metrics, s.a.Metrics.Handler()); err != nil {
		errs = append(errs, fmt.Errorf("metrics endpoint %s: %w", want.Metrics, err))
		want.Metrics = ""
		s.metrs = nil
	} else {
		s.metrs = srv
	}
	s.a.Metrics.SetRuntimeCollectors(want.GoMetrics, want.ProcessMetrics)
	for _, name := range s.a.Health.workerNames() {
		d, ok := want.Timeouts[name]
		if !ok {
			d = DefaultWorkerTimeout
		}
		s.a.Health.SetTimeout(name, d)
	}
	if !reflect.DeepEqual(want, s.applied) {
		s.log.Info("own endpoints", "health", want.Health, "metrics", want.Metrics,
			"goMetrics", want.GoMetrics, "processMetrics", want.ProcessMetrics)
	}
	s.applied = want
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// relisten returns the server for addr: cur when addr is unchanged, else a
// new one (cur closed first, so that a port can move between addresses).
func (s *selfServer) relisten(cur *http.Server, curAddr, addr string, h http.Handler) (*http.Server, error) {
	if cur != nil && curAddr == addr {
		return cur, nil
	}
	if cur != nil {
		_ = cur.Close()
	}
	if addr == "" {
		return nil, nil
	}
	return serveTCP(addr, h)
}

// close stops both listeners.
func (s *selfServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range []*http.Server{s.health, s.metrs} {
		if srv != nil {
			_ = srv.Close()
		}
	}
	s.health, s.metrs = nil, nil
}

// follow keeps the endpoints in step with FelixConfiguration until ctx ends.
func (s *selfServer) follow(ctx context.Context) error {
	return datastore.NewSyncer(s.a.d.Datastore, s, datastore.SyncerConfig{
		Kinds: []string{"FelixConfiguration"}, Logger: s.a.d.Logger,
	}).Run(ctx)
}
