package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
)

func felix(name, spec string) *api.FelixConfiguration {
	docs, err := api.Load("test", []byte(`{"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
		"metadata": {"name": "`+name+`"}, "spec": `+spec+`}`), nil)
	if err != nil {
		panic(err)
	}
	return docs[0].Resource.(*api.FelixConfiguration)
}

func TestSettingsFor(t *testing.T) {
	flags := Config{HealthListen: "127.0.0.1:9099", MetricsListen: "127.0.0.1:9091"}
	fixed := flags
	fixed.HealthListenFixed, fixed.MetricsListenFixed = true, true
	def := selfSettings{Health: "127.0.0.1:9099", Metrics: "127.0.0.1:9091", GoMetrics: true, ProcessMetrics: true, Timeouts: map[string]time.Duration{}}
	with := func(f func(*selfSettings)) selfSettings {
		s := def
		s.Timeouts = map[string]time.Duration{}
		f(&s)
		return s
	}
	tests := []struct {
		name string
		cfg  Config
		fcs  []*api.FelixConfiguration
		want selfSettings
	}{
		{"no FelixConfiguration: the command line", flags, nil, def},
		{"health moved", flags, []*api.FelixConfiguration{felix("default", `{"healthHost": "0.0.0.0", "healthPort": 9199}`)},
			with(func(s *selfSettings) { s.Health = "0.0.0.0:9199" })},
		{"health off", flags, []*api.FelixConfiguration{felix("default", `{"healthEnabled": false}`)},
			with(func(s *selfSettings) { s.Health = "" })},
		{"metrics on an IPv6 host", flags, []*api.FelixConfiguration{felix("default", `{"prometheusMetricsEnabled": true, "prometheusMetricsHost": "::1", "prometheusMetricsPort": 9200}`)},
			with(func(s *selfSettings) { s.Metrics = "[::1]:9200" })},
		{"metrics off, runtime collectors off", flags, []*api.FelixConfiguration{felix("default", `{"prometheusMetricsEnabled": false, "prometheusGoMetricsEnabled": false, "prometheusProcessMetricsEnabled": false}`)},
			with(func(s *selfSettings) { s.Metrics, s.GoMetrics, s.ProcessMetrics = "", false, false })},
		{"the node's object wins", flags, []*api.FelixConfiguration{
			felix("default", `{"healthPort": 9199, "healthTimeoutOverrides": [{"name": "syncer", "timeout": "10s"}]}`),
			felix("node.h1", `{"healthPort": 9299, "healthTimeoutOverrides": [{"name": "InternalDataplaneMainLoop", "timeout": "20s"}]}`)},
			with(func(s *selfSettings) {
				s.Health = "127.0.0.1:9299"
				s.Timeouts = map[string]time.Duration{"dataplane": 20 * time.Second}
			})},
		{"the default's overrides stay when the node has none", flags, []*api.FelixConfiguration{
			felix("default", `{"healthTimeoutOverrides": [{"name": "CalculationGraph", "timeout": "10s"}]}`), felix("node.h1", `{}`)},
			with(func(s *selfSettings) { s.Timeouts = map[string]time.Duration{"calculation": 10 * time.Second} })},
		{"flags win over FelixConfiguration", fixed, []*api.FelixConfiguration{felix("default", `{"healthEnabled": false, "healthPort": 1, "prometheusMetricsPort": 2, "prometheusGoMetricsEnabled": false}`)},
			with(func(s *selfSettings) { s.GoMetrics = false })},
		{"health off on the command line, on in FelixConfiguration", Config{}, []*api.FelixConfiguration{felix("default", `{"healthEnabled": true}`)},
			selfSettings{Health: "127.0.0.1:9099", GoMetrics: true, ProcessMetrics: true, Timeouts: map[string]time.Duration{}}},
	}
	for _, tt := range tests {
		if got := settingsFor(tt.cfg, tt.fcs...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAgentFollowsFelixConfigurationEndpoints runs the agent and changes
// FelixConfiguration at run time: the health and metrics listeners move,
// the Go runtime's metrics go, and a worker's timeout changes.
func TestAgentFollowsFelixConfigurationEndpoints(t *testing.T) {
	ds := datastore.NewMemory(nil)
	a, err := New(Config{NodeName: "node1", IPv4: "172.17.8.101/24", IPv6: "none", HeartbeatInterval: 20 * time.Millisecond},
		Deps{Datastore: ds, Host: noHost{}, NewDataplane: func(after func(dataplane.ApplyResult)) (*dataplane.Dataplane, error) {
			return dataplane.New(dataplane.Options{NFT: dataplane.NewFakeNFT(), AfterApply: after})
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	get := func(port int, path string) (int, string, error) {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not %s within 10s", what)
			}
		}
	}
	hp, mp, hp2 := freePort(t), freePort(t), freePort(t)
	fc := felix("default", fmt.Sprintf(`{"healthEnabled": true, "healthPort": %d, "prometheusMetricsEnabled": true, "prometheusMetricsPort": %d,
		"healthTimeoutOverrides": [{"name": "dataplane", "timeout": "42s"}]}`, hp, mp))
	if _, err := ds.Create(ctx, fc); err != nil {
		t.Fatal(err)
	}
	eventually("serving /readiness on the FelixConfiguration's port", func() bool { c, _, err := get(hp, "/readiness"); return err == nil && c == 200 })
	_, body, _ := get(hp, "/liveness")
	if !strings.Contains(body, `"name":"dataplane","timeout":"42s"`) {
		t.Errorf("healthTimeoutOverrides not applied: %s", body)
	}
	if _, body, err := get(mp, "/metrics"); err != nil || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "serval_local_endpoints") {
		t.Errorf("metrics on %d: err %v, Go metrics missing or serval's: %.200s", mp, err, body)
	}

	cur, err := ds.Get(ctx, api.KeyOf(fc))
	if err != nil {
		t.Fatal(err)
	}
	fc = cur.(*api.FelixConfiguration)
	fc.Spec.HealthPort = &hp2
	off := false
	fc.Spec.PrometheusGoMetricsEnabled = &off
	fc.Spec.HealthTimeoutOverrides = nil
	if _, err := ds.Update(ctx, fc); err != nil {
		t.Fatal(err)
	}
	eventually("serving on the new health port", func() bool { _, _, err := get(hp2, "/liveness"); return err == nil })
	if _, _, err := get(hp, "/liveness"); err == nil {
		t.Errorf("still serving health on the old port %d", hp)
	}
	eventually("without the Go runtime's metrics", func() bool {
		_, body, err := get(mp, "/metrics")
		return err == nil && !strings.Contains(body, "go_goroutines") && strings.Contains(body, "process_")
	})
	_, body, _ = get(hp2, "/liveness")
	if !strings.Contains(body, `"name":"dataplane","timeout":"1m30s"`) {
		t.Errorf("dataplane timeout not back to the default once the override went: %s", body)
	}

	if _, err := ds.Delete(ctx, api.KeyOf(fc), ""); err != nil {
		t.Fatal(err)
	}
	eventually("health off once FelixConfiguration is gone (the command line said none)", func() bool { _, _, err := get(hp2, "/liveness"); return err != nil })
}
