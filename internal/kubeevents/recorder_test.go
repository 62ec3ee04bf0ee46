package kubeevents_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/admission"
	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubeevents"
	"github.com/servalnet/serval/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// collector keeps the last update of each key the filter passed on.
type collector struct {
	mu   sync.Mutex
	last map[api.Key]datastore.Update
}

func (c *collector) OnStatus(datastore.Status) {}
func (c *collector) OnUpdates(us []datastore.Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range us {
		c.last[u.Key] = u
	}
}
func (c *collector) get(k api.Key) (datastore.Update, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.last[k]
	return u, ok
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const invalidGNP = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: %s
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - action: Allow
    source:
      selector: "%s"
`

// TestRejectedResourceGetsAnEvent: a GlobalNetworkPolicy that kubectl
// wrote with a selector that does not parse reaches the agent's filter
// through the kubernetes datastore and a syncer; it fails closed (its
// rules become one Deny) and a Warning Event is recorded on it, once per
// version of it, naming the field and why.
func TestRejectedResourceGetsAnEvent(t *testing.T) {
	c := kubetest.Shared(t)
	c.MustKubectl(t, "apply", "-f", "../../manifests/crds/globalnetworkpolicies.projectcalico.org.yaml")
	name := fmt.Sprintf("bad-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The CRD may take a moment to be served.
	waitFor(t, ctx, "kubectl apply of the invalid policy", func() (bool, error) {
		_, err := c.KubectlStdin(strings.NewReader(fmt.Sprintf(invalidGNP, name, "role == ((")), "apply", "-f", "-")
		return err == nil, nil
	})
	t.Cleanup(func() { _, _ = c.Kubectl("delete", "globalnetworkpolicies.projectcalico.org", name) })

	s, err := kubernetes.New(c.RESTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs := k8s.NewForConfigOrDie(c.RESTConfig()) // the test reads the Events back with client-go
	sink, err := kubeevents.NewRESTSink(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	rec := kubeevents.New(sink, "node-a", nil, s.IsDerived)
	go rec.Run(ctx)
	next := &collector{last: map[api.Key]datastore.Update{}}
	reg := admission.NewRegistry()
	filter := admission.NewFilter(next, reg, nil)
	filter.ReportTo(rec)
	syncer := datastore.NewSyncer(s, filter, datastore.SyncerConfig{Kinds: []string{"GlobalNetworkPolicy"}})
	go func() { _ = syncer.Run(ctx) }()

	key := api.Key{Kind: "GlobalNetworkPolicy", Name: name}
	waitFor(t, ctx, "the invalid policy to reach the filter's consumer", func() (bool, error) {
		_, ok := next.get(key)
		return ok, nil
	})
	u, _ := next.get(key)
	gnp := u.Object.(*api.GlobalNetworkPolicy)
	if len(gnp.Spec.Ingress) != 1 || gnp.Spec.Ingress[0].Action != api.Deny || gnp.Spec.Ingress[0].Source.Selector != "" {
		t.Errorf("the invalid policy did not fail closed: ingress %+v", gnp.Spec.Ingress)
	}
	if rs := reg.List(); len(rs) != 1 || rs[0].Name != name {
		t.Errorf("rejected in the agent's status: %+v", rs)
	}

	events := func() ([]corev1.Event, error) {
		l, err := cs.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	var evs []corev1.Event
	waitFor(t, ctx, "an Event on the rejected policy", func() (bool, error) {
		evs, err = events()
		return len(evs) > 0, err
	})
	cur, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	ev := evs[0]
	io := ev.InvolvedObject
	if io.APIVersion != "projectcalico.org/v3" || io.Kind != "GlobalNetworkPolicy" || io.Name != name || io.Namespace != "" ||
		string(io.UID) != cur.GetObjectMeta().UID || io.UID == "" {
		t.Errorf("involvedObject %+v, want the policy (uid %s)", io, cur.GetObjectMeta().UID)
	}
	if ev.Type != corev1.EventTypeWarning || ev.Reason != "FailedValidation" || ev.ReportingController != "serval-node" ||
		ev.ReportingInstance != "node-a" || ev.Source.Host != "node-a" {
		t.Errorf("event %+v", ev)
	}
	if !strings.Contains(ev.Message, "spec.ingress[0].source.selector") || !strings.Contains(ev.Message, "failed closed") {
		t.Errorf("message %q does not name the field or what was done", ev.Message)
	}

	// The same version again (a resync) is not reported again; a new
	// version, still invalid, is. Events are sent in order, so once the
	// second exists a duplicate of the first would have too.
	filter.Admit(datastore.Update{Type: datastore.Modified, Key: key, Object: cur})
	cur2, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	filter.Admit(datastore.Update{Type: datastore.Modified, Key: key, Object: cur2})
	if _, err := c.KubectlStdin(strings.NewReader(fmt.Sprintf(invalidGNP, name, "role in ((")), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "an Event on the second version", func() (bool, error) {
		evs, err = events()
		return len(evs) >= 2, err
	})
	if len(evs) != 2 {
		t.Errorf("%d Events, want 2 (one per version): %+v", len(evs), evs)
	}
}
