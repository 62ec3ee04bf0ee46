package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
)

// These tests use a scripted HTTP server in place of the API server, for
// what a real one does only under conditions a test cannot produce on
// demand (a stream ended by the server, a bookmark, an error event); the
// conformance suite runs against a real kube-apiserver.

func thingEvent(typ, name string, rev int) string {
	return fmt.Sprintf(`{"type":%q,"object":{"apiVersion":"projectcalico.org/v3","kind":"TestThing","metadata":{"name":%q,"uid":"u-%s","resourceVersion":"%d","creationTimestamp":"2026-01-02T03:04:05Z"},"spec":{"mode":"Auto"}}}`+"\n", typ, name, name, rev)
}

// script serves one scripted answer per watch request, in order, and
// records the resourceVersion each asked for.
type script struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter)
	asked   []string
	accept  []string // the Accept header of each watch request
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("watch") != "true" {
		http.Error(w, "only watches are scripted", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.asked = append(s.asked, r.URL.Query().Get("resourceVersion"))
	s.accept = append(s.accept, r.Header.Get("Accept"))
	var answer func(http.ResponseWriter)
	if len(s.answers) > 0 {
		answer, s.answers = s.answers[0], s.answers[1:]
	}
	s.mu.Unlock()
	if answer == nil {
		// Out of script: hold the stream open until the client leaves.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	answer(w)
}

func (s *script) askedFor() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

func (s *script) accepted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accept...)
}

// podEvent is a watch event of a Pod that stands for a WorkloadEndpoint
// named after it (see endpointOf).
func podEvent(typ watch.EventType, name string, rev int) watch.Event {
	return watch.Event{Type: typ, Object: &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("u-" + name), ResourceVersion: strconv.Itoa(rev),
			Annotations: map[string]string{"cni.projectcalico.org/podIP": "10.9.0.1/32"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c"}}},
	}}
}

// endpointOf is the name of the WorkloadEndpoint of a podEvent's pod.
func endpointOf(pod string) string { return api.WorkloadEndpointName("n1", "k8s", pod, "eth0") }

// protoStreamed answers a watch as the API server does for its own
// resources when asked for protobuf: each event a WatchEvent after its
// length, its object in the protobuf envelope.
func protoStreamed(t *testing.T, events ...watch.Event) func(http.ResponseWriter) {
	var frames [][]byte
	for _, ev := range events {
		// The API server's objects say what they are.
		gvks, _, err := builtinScheme.ObjectKinds(ev.Object)
		if err != nil {
			t.Fatal(err)
		}
		ev.Object.GetObjectKind().SetGroupVersionKind(gvks[0])
		obj, err := runtime.Encode(protoObjects, ev.Object)
		if err != nil {
			t.Fatal(err)
		}
		we, err := runtime.Encode(protoEvents, &metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: obj}})
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, we)
	}
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", runtime.ContentTypeProtobuf+";stream=watch")
		w.WriteHeader(http.StatusOK)
		fw := protobuf.LengthDelimitedFramer.NewFrameWriter(w)
		for _, f := range frames {
			_, _ = fw.Write(f)
		}
	}
}

func streamed(lines ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		for _, l := range lines {
			_, _ = w.Write([]byte(l))
		}
	}
}

func statusAnswer(code int, reason string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"scripted %s","reason":%q,"code":%d}`, reason, reason, code)
	}
}

func collect(t *testing.T, w datastore.Watcher, n int) []datastore.Event {
	t.Helper()
	var out []datastore.Event
	for len(out) < n {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher closed after %d events, want %d", len(out), n)
			}
			out = append(out, ev)
		case <-time.After(20 * time.Second):
			t.Fatalf("got %d events, want %d", len(out), n)
		}
	}
	return out
}

func waitClosed(t *testing.T, w datastore.Watcher) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Fatalf("event %v (%v) after the last expected one", ev.Type, ev.Err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("watcher not closed")
	}
}

func TestWatchScripted(t *testing.T) {
	cases := []struct {
		name    string
		kind    string // dstest.ThingKind unless given
		answers []func(http.ResponseWriter)
		// want: one line per event, "Added a 11" or "Error <sentinel>".
		want   []string
		asked  []string // resourceVersions of the watch requests
		closes bool
	}{
		{
			name: "stream ended by the server is resumed from the last event, without duplicates",
			answers: []func(http.ResponseWriter){
				streamed(thingEvent("ADDED", "a", 11), thingEvent("MODIFIED", "a", 12)),
				streamed(thingEvent("MODIFIED", "a", 12), thingEvent("DELETED", "a", 13)),
			},
			want:  []string{"Added a 11", "Modified a 12", "Deleted a 13"},
			asked: []string{"10", "12", "13"},
		},
		{
			name: "a bookmark moves the resume point",
			answers: []func(http.ResponseWriter){
				streamed(thingEvent("ADDED", "a", 11), `{"type":"BOOKMARK","object":{"kind":"TestThing","apiVersion":"projectcalico.org/v3","metadata":{"resourceVersion":"40"}}}`+"\n"),
				streamed(thingEvent("ADDED", "b", 41)),
			},
			want:  []string{"Added a 11", "Added b 41"},
			asked: []string{"10", "40", "41"},
		},
		{
			name: "410 on connecting is ErrCompacted",
			answers: []func(http.ResponseWriter){
				statusAnswer(http.StatusGone, "Expired"),
			},
			want:   []string{"Error compacted"},
			asked:  []string{"10"},
			closes: true,
		},
		{
			name: "410 as an error event is ErrCompacted",
			answers: []func(http.ResponseWriter){
				streamed(thingEvent("ADDED", "a", 11), `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 11 (20)","reason":"Expired","code":410}}`+"\n"),
			},
			want:   []string{"Added a 11", "Error compacted"},
			asked:  []string{"10"},
			closes: true,
		},
		{
			name: "pods in protobuf: events, a bookmark, a resumed stream",
			kind: "WorkloadEndpoint",
			answers: []func(http.ResponseWriter){
				protoStreamed(t, podEvent(watch.Added, "a", 11), podEvent(watch.Modified, "a", 12),
					watch.Event{Type: watch.Bookmark, Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "30"}}}),
				protoStreamed(t, podEvent(watch.Deleted, "a", 31)),
			},
			want:  []string{"Added " + endpointOf("a") + " 11", "Modified " + endpointOf("a") + " 12", "Deleted " + endpointOf("a") + " 31"},
			asked: []string{"10", "30", "31"},
		},
		{
			name: "pods in protobuf: 410 as an error event is ErrCompacted",
			kind: "WorkloadEndpoint",
			answers: []func(http.ResponseWriter){
				protoStreamed(t, podEvent(watch.Added, "a", 11), watch.Event{Type: watch.Error, Object: &metav1.Status{
					Status: metav1.StatusFailure, Message: "too old resource version: 11 (20)", Reason: metav1.StatusReasonExpired, Code: http.StatusGone}}),
			},
			want:   []string{"Added " + endpointOf("a") + " 11", "Error compacted"},
			asked:  []string{"10"},
			closes: true,
		},
		{
			name: "a server that keeps failing is ErrUnavailable",
			answers: []func(http.ResponseWriter){
				statusAnswer(http.StatusServiceUnavailable, "ServiceUnavailable"),
				statusAnswer(http.StatusServiceUnavailable, "ServiceUnavailable"),
				statusAnswer(http.StatusServiceUnavailable, "ServiceUnavailable"),
				statusAnswer(http.StatusServiceUnavailable, "ServiceUnavailable"),
				statusAnswer(http.StatusServiceUnavailable, "ServiceUnavailable"),
				statusAnswer(http.StatusServiceUnavailable, "ServiceUnavailable"),
			},
			want:   []string{"Error unavailable"},
			asked:  []string{"10", "10", "10", "10", "10", "10"},
			closes: true,
		},
		{
			name: "a forbidden watch fails at once",
			answers: []func(http.ResponseWriter){
				statusAnswer(http.StatusForbidden, "Forbidden"),
			},
			want:   []string{"Error other"},
			asked:  []string{"10"},
			closes: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := &script{answers: c.answers}
			srv := httptest.NewServer(sc)
			defer srv.Close()
			s, err := New(&rest.Config{Host: srv.URL}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			kind := cmp.Or(c.kind, dstest.ThingKind)
			w, err := s.Watch(context.Background(), datastore.WatchOptions{Kind: kind, Revision: 10})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			var got []string
			for _, ev := range collect(t, w, len(c.want)) {
				if ev.Type == datastore.Error {
					kind := "other"
					switch {
					case errors.Is(ev.Err, datastore.ErrCompacted):
						kind = "compacted"
					case errors.Is(ev.Err, datastore.ErrUnavailable):
						kind = "unavailable"
					}
					got = append(got, "Error "+kind)
					continue
				}
				got = append(got, fmt.Sprintf("%v %s %d", ev.Type, ev.Object.GetObjectMeta().Name, ev.Revision))
			}
			if strings.Join(got, "; ") != strings.Join(c.want, "; ") {
				t.Errorf("events = %q\nwant     %q", got, c.want)
			}
			if c.closes {
				waitClosed(t, w)
			} else {
				// The watcher resumed and waits on the held stream.
				deadline := time.Now().Add(20 * time.Second)
				for len(sc.askedFor()) < len(c.asked) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if got := sc.askedFor(); strings.Join(got, ",") != strings.Join(c.asked, ",") {
				t.Errorf("watch requests from revisions %v, want %v", got, c.asked)
			}
			// Kubernetes' own resources are asked for in protobuf,
			// custom resources in JSON.
			want := "application/json"
			if kind == "WorkloadEndpoint" {
				want = runtime.ContentTypeProtobuf
			}
			for _, a := range sc.accepted() {
				if a != want {
					t.Errorf("a watch request accepts %q, want %q", a, want)
				}
			}
		})
	}
}

// TestUnreachable: a server that does not answer is ErrUnavailable, for
// every operation, naming the server.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	host := "http://" + addr
	s, err := New(&rest.Config{Host: host}, nil, WithRequestTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	key := api.Key{Kind: dstest.ThingKind, Name: "a"}
	for name, op := range map[string]func() error{
		"Get": func() error {
			_, err := s.Get(ctx, key)
			return err
		},
		"Update": func() error {
			_, err := s.Update(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{}))
			return err
		},
		"Delete": func() error {
			_, err := s.Delete(ctx, key, "")
			return err
		},
		"Create": func() error {
			_, err := s.Create(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{}))
			return err
		},
		"List": func() error {
			_, err := s.List(ctx, datastore.ListOptions{Kind: dstest.ThingKind})
			return err
		},
		"Watch": func() error {
			_, err := s.Watch(ctx, datastore.WatchOptions{Kind: dstest.ThingKind})
			return err
		},
	} {
		err := op()
		if !errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v, want ErrUnavailable naming %s", name, err, addr)
		}
	}
}

func TestPodOfEndpoint(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{api.WorkloadEndpointName("node1", "k8s", "web", "eth0"), "web"},
		{api.WorkloadEndpointName("node-1.example", "k8s", "web-0", "eth0"), "web-0"},
		{api.WorkloadEndpointName("n", "k8s", "a--b", "eth0"), "a--b"},
		{api.WorkloadEndpointName("node1", "openstack", "web", "eth0"), ""},
		{"node1-k8s-web", ""},
		{"", ""},
	} {
		if got := podOfEndpoint(c.name); got != c.want {
			t.Errorf("podOfEndpoint(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}
