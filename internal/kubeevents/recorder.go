package kubeevents

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/servalnet/serval/internal/admission"
	"github.com/servalnet/serval/internal/api"
)

// What the Events say.
const (
	Reason     = "FailedValidation"
	Action     = "Validate"
	Controller = "serval-node"
)

// Limits of the sending: a burst of Burst Events, then Rate a second;
// at most QueueLength waiting.
const (
	Rate        = 5
	Burst       = 50
	QueueLength = 256
	// maxMessage bounds an Event's message (the API server refuses more
	// than 1 KiB in a core/v1 Event's note).
	maxMessage = 1000
	// sendTimeout bounds one request.
	sendTimeout = 10 * time.Second
)

// Recorder is an admission.Reporter that records Events. It is safe for
// concurrent use.
type Recorder struct {
	sink  Sink
	node  string
	log   *slog.Logger
	skip  func(api.Key) bool
	limit *rate.Limiter
	queue chan *corev1.Event
	now   func() time.Time

	mu sync.Mutex
	// reported is the version (uid/resourceVersion) of each rejected
	// resource that an Event was queued for.
	reported map[api.Key]string
}

var _ admission.Reporter = (*Recorder)(nil)

// New returns a recorder sending to sink as node. skip, when not nil,
// says which resources not to report on: those derived from Kubernetes
// objects (kubernetes.Store.IsDerived), which are not custom resources of
// their own. A nil log discards. Nothing is sent until Run.
func New(sink Sink, node string, log *slog.Logger, skip func(api.Key) bool) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{sink: sink, node: node, log: log.With("component", "kubeevents"), skip: skip,
		limit: rate.NewLimiter(Rate, Burst), queue: make(chan *corev1.Event, QueueLength),
		now: time.Now, reported: map[api.Key]string{}}
}

// Reject implements admission.Reporter: it queues an Event on obj unless
// one was queued for this version of it.
func (r *Recorder) Reject(obj api.Resource, rej admission.Rejected) {
	key := api.Key{Kind: rej.Kind, Namespace: rej.Namespace, Name: rej.Name}
	if r.skip != nil && r.skip(key) {
		return
	}
	m := obj.GetObjectMeta()
	version := m.UID + "/" + m.ResourceVersion
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported[key] == version {
		return
	}
	ev := r.event(key, m, rej)
	select {
	case r.queue <- ev:
		r.reported[key] = version
	default:
		r.log.Warn("too many rejections to report: no Event for this one", "resource", key.String())
	}
}

// Clear implements admission.Reporter.
func (r *Recorder) Clear(key api.Key) {
	r.mu.Lock()
	delete(r.reported, key)
	r.mu.Unlock()
}

// event is the Event on one rejected resource.
func (r *Recorder) event(key api.Key, m *api.ObjectMeta, rej admission.Rejected) *corev1.Event {
	ns := key.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault // where Events on cluster-wide objects go
	}
	now := r.now()
	msg := fmt.Sprintf("Serval rejected this %s (%s): %s", key.Kind, rej.Action, strings.ReplaceAll(rej.Reason, "\n", "; "))
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// As client-go names them: the object's name and a unique suffix.
			Name:      fmt.Sprintf("%s.%x", key.Name, now.UnixNano()),
			Namespace: ns,
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: api.APIVersion, Kind: key.Kind, Namespace: key.Namespace, Name: key.Name,
			UID: types.UID(m.UID), ResourceVersion: m.ResourceVersion,
		},
		Reason:              Reason,
		Message:             msg,
		Type:                corev1.EventTypeWarning,
		Source:              corev1.EventSource{Component: Controller, Host: r.node},
		FirstTimestamp:      metav1.NewTime(now),
		LastTimestamp:       metav1.NewTime(now),
		Count:               1,
		Action:              Action,
		ReportingController: Controller,
		ReportingInstance:   r.node,
	}
}

// Run sends the queued Events until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			if err := r.limit.Wait(ctx); err != nil {
				return
			}
			sctx, cancel := context.WithTimeout(ctx, sendTimeout)
			err := r.sink.CreateEvent(sctx, ev)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Warn("recording an Event on a rejected resource failed", "kind", ev.InvolvedObject.Kind,
					"namespace", ev.InvolvedObject.Namespace, "name", ev.InvolvedObject.Name, "err", err)
				r.mu.Lock()
				key := api.Key{Kind: ev.InvolvedObject.Kind, Namespace: ev.InvolvedObject.Namespace, Name: ev.InvolvedObject.Name}
				if r.reported[key] == string(ev.InvolvedObject.UID)+"/"+ev.InvolvedObject.ResourceVersion {
					delete(r.reported, key) // reported again at the next resync
				}
				r.mu.Unlock()
			}
		}
	}
}
