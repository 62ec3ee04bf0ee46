package node

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/servalnet/serval/internal/dataplane"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
)

// lockedSysctl records sysctl writes; the dataplane writes from its own
// goroutine while the test reads.
type lockedSysctl struct {
	mu     sync.Mutex
	writes []string
}

func (s *lockedSysctl) Set(name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, name+"="+value)
	return nil
}

func (s *lockedSysctl) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

// TestAgentRejectsWhatServalctlWould writes objects servalctl refuses
// straight into a real etcd, runs the agent on it, and checks that they
// are reported in the node's status and metrics, and that the endpoint
// whose interface name walks out of /proc/sys is never configured.
func TestAgentRejectsWhatServalctlWould(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: t.TempDir(),
		ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	defer srv.Close()
	const prefix = "/agent-test"
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientURL()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for key, val := range map[string]string{
		"/workloadendpoints/default/h-cni-good-eth0": `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h-cni-good-eth0","namespace":"default","labels":{"app":"web"}},
			"spec":{"node":"h","orchestrator":"cni","workload":"good","endpoint":"eth0","interfaceName":"cali1","ipNetworks":["10.65.0.1/32"]}}`,
		"/workloadendpoints/default/h-cni-evil-eth0": `{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h-cni-evil-eth0","namespace":"default"},
			"spec":{"node":"h","orchestrator":"cni","workload":"evil","endpoint":"eth0","interfaceName":"cali/../all","ipNetworks":["10.65.0.2/32"]}}`,
		"/globalnetworkpolicies/http": `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"http"},
			"spec":{"selector":"app == 'web'","ingress":[{"action":"Allow","protocol":"TCP","http":{"methods":["GET"]}}]}}`,
		"/ippools/lb": `{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"lb"},"spec":{"cidr":"10.65.0.0/16","allowedUses":["LoadBalancer"]}}`,
	} {
		if _, err := raw.Put(ctx, prefix+key, val); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()

	sysctl := &lockedSysctl{}
	sock := filepath.Join(t.TempDir(), "node.sock")
	a, err := New(Config{NodeName: "h", IPv4: "192.0.2.10/24", IPv6: "none", StatusSocket: sock}, Deps{
		Datastore: ds,
		NewDataplane: func(after func(dataplane.ApplyResult)) (*dataplane.Dataplane, error) {
			return dataplane.New(dataplane.Options{NFT: dataplane.NewFakeNFT(), Sysctl: sysctl,
				Routes: dataplane.NewFakeRoutes(map[string]int{"cali1": 10}), AfterApply: after})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { stop(); <-done }()

	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var rep StatusReport
	for {
		rep = StatusReport{}
		if resp, err := client.Get("http://node/status"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&rep)
			resp.Body.Close()
		}
		if len(rep.Rejected) == 3 && rep.Health.Programmed {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("status never listed the 3 rejected objects with the dataplane programmed: %+v", rep)
		case <-time.After(100 * time.Millisecond):
		}
	}
	want := map[string]string{ // kind/name → part of the reason
		"GlobalNetworkPolicy/http":         "failed closed:spec.ingress[0].http",
		"IPPool/lb":                        "skipped:spec.allowedUses",
		"WorkloadEndpoint/h-cni-evil-eth0": "skipped:spec.interfaceName",
	}
	for _, r := range rep.Rejected {
		w, ok := want[r.Kind+"/"+r.Name]
		action, field, _ := strings.Cut(w, ":")
		if !ok || r.Action != action || !strings.Contains(r.Reason, field) {
			t.Errorf("reported %+v; want one of %v", r, want)
		}
	}
	for _, w := range sysctl.all() {
		if strings.Contains(w, "..") || strings.Contains(w, "conf/all/") && !strings.HasPrefix(w, "net/ipv6/conf/all/forwarding=") {
			t.Errorf("sysctl written outside the workload's own interface: %s", w)
		}
	}
	found := false
	for _, w := range sysctl.all() {
		found = found || w == "net/ipv4/conf/cali1/proxy_arp=1"
	}
	if !found {
		t.Errorf("the valid endpoint was not configured: %q", sysctl.all())
	}

	mfs, err := a.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "serval_rejected_objects" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if got["GlobalNetworkPolicy"] != 1 || got["IPPool"] != 1 || got["WorkloadEndpoint"] != 1 {
		t.Errorf("serval_rejected_objects = %v", got)
	}
}
