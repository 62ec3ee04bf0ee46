package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// watchBuffer is how many events a watcher holds for a slow reader
// before it stops reading the stream; the API server then drops the
// stream after a while, and the watcher resumes from the last revision it
// took.
const watchBuffer = 128

// Reconnecting a stream the server ended: the first retry is at once, the
// next after minResume, doubling up to maxResume; a stream that delivered
// something starts the count again. maxResumeAttempts failed connections
// in a row end the watch with ErrUnavailable.
const (
	minResume         = 50 * time.Millisecond
	maxResume         = 2 * time.Second
	maxResumeAttempts = 5
)

// stream is one Kubernetes resource a watch follows: a stored kind's
// custom resources, or the objects a derived kind comes from.
type stream struct {
	what    string                          // for messages: "TestThing", "Pods"
	request func(verb string) *rest.Request // the resource, in the namespace watched
	// format reads its lists and watch streams into the datastore's
	// resources.
	format format
	last   int64 // the revision of the last event or bookmark taken
	// derived: a resource the API server may not serve (an add-on's),
	// which then stands for nothing rather than failing the watch.
	derived bool
}

// Watch implements datastore.Interface. With Revision 0 it first reads
// the current revision, so that every change after Watch returns is
// seen (a Kubernetes watch "from now" would start with the whole kind).
func (s *Store) Watch(ctx context.Context, opts datastore.WatchOptions) (datastore.Watcher, error) {
	info, err := kindInfo(opts.Kind)
	if err != nil {
		return nil, fmt.Errorf("watching: %w", err)
	}
	if strings.Contains(opts.Namespace, "/") {
		return nil, fmt.Errorf("watching %s: namespace must not contain '/'", opts.Kind)
	}
	if opts.Revision < 0 {
		return nil, fmt.Errorf("watching %s: revision %d is negative", opts.Kind, opts.Revision)
	}
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("watching %s: %w", opts.Kind, err)
	}
	streams := s.streams(info, opts.Namespace)
	from := opts.Revision
	if from == 0 {
		from, err = s.currentRevision(ctx, streams[0])
		if err != nil {
			return nil, fmt.Errorf("watching %s: reading the current revision: %w", opts.Kind, err)
		}
	}
	for _, st := range streams {
		st.last = from
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		s:       s,
		kind:    info.Kind,
		from:    from,
		streams: streams,
		out:     make(chan datastore.Event, watchBuffer),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	s.watches.Add(1)
	go func() {
		defer s.watches.Done()
		w.run(wctx, ctx)
	}()
	return w, nil
}

// streams are the resources a kind is read from: its custom resources
// when it is stored, and those it is derived from.
func (s *Store) streams(info api.KindInfo, namespace string) []*stream {
	var out []*stream
	ds := s.derivers[info.Kind]
	if !info.Namespaced {
		namespace = ""
	}
	if len(ds) == 0 || storedToo[info.Kind] {
		out = append(out, &stream{
			what:    info.Kind,
			request: func(verb string) *rest.Request { return s.request(verb, info, namespace, "") },
			format: jsonFormat{object: func(raw []byte) (api.Resource, int64, error) {
				obj, rev, err := decode(info.Kind, raw)
				if err == nil && isKubeTier(api.KeyOf(obj)) {
					return nil, rev, nil // the derived tier stands for it
				}
				return obj, rev, err
			}},
		})
	}
	for _, d := range ds {
		out = append(out, &stream{
			what:    d.from,
			request: func(verb string) *rest.Request { return s.derivedRequest(verb, d, namespace, "") },
			format:  d.format(s.log),
			derived: true,
		})
	}
	return out
}

// watcher follows one kind through the API server's watch streams of
// each resource it is read from.
type watcher struct {
	s       *Store
	kind    string
	from    int64 // the revision asked for
	streams []*stream

	out    chan datastore.Event
	sendMu sync.Mutex // one stream's error is the last event
	ended  bool
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (w *watcher) Events() <-chan datastore.Event { return w.out }

// Stop implements datastore.Watcher: it returns once Events is closed.
func (w *watcher) Stop() {
	w.once.Do(w.cancel)
	<-w.done
}

// streamEnd is why one stream ended.
type streamEnd struct {
	err       error // nil: the server closed it cleanly
	delivered bool  // it carried at least one event or bookmark
}

func (w *watcher) run(ctx, callerCtx context.Context) {
	defer close(w.done)
	defer close(w.out)
	defer w.cancel()
	// Close of the store ends the watch like a lost connection.
	var storeClosed atomic.Bool
	go func() {
		select {
		case <-w.s.closed:
			storeClosed.Store(true)
			w.cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	for _, st := range w.streams {
		wg.Go(func() {
			err := w.follow(ctx, st)
			if err == nil || ctx.Err() != nil {
				return
			}
			if st.derived && errors.Is(err, errCRDMissing) {
				w.s.log.Debug("API server does not serve a resource a kind is derived from; waiting for it", "kind", w.kind, "from", st.what)
				if !w.awaitServed(ctx, st) {
					return
				}
				// What the resource holds (and the tiers of
				// ClusterNetworkPolicies) is in no stream from the
				// revision asked for: the caller lists again.
				err = fmt.Errorf("%w: the API server began to serve %s", datastore.ErrCompacted, st.what)
			}
			w.fail(ctx, fmt.Errorf("watching %s from revision %d: %w", w.kind, w.from, err))
			w.cancel()
		})
	}
	wg.Wait()
	// The caller's cancellation or Stop is no failure; Close is one.
	if storeClosed.Load() && callerCtx.Err() == nil {
		err := fmt.Errorf("watching %s: %w: the kubernetes datastore was closed", w.kind, datastore.ErrUnavailable)
		w.sendMu.Lock()
		defer w.sendMu.Unlock()
		if !w.ended {
			w.ended = true
			select {
			case w.out <- datastore.Event{Type: datastore.Error, Err: err}:
			case <-time.After(time.Second):
			}
		}
	}
}

// send delivers one event unless the watch has ended.
func (w *watcher) send(ctx context.Context, ev datastore.Event) bool {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.ended {
		return false
	}
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail delivers the watch's one Error event.
func (w *watcher) fail(ctx context.Context, err error) {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.ended {
		return
	}
	w.ended = true
	select {
	case w.out <- datastore.Event{Type: datastore.Error, Err: err}:
	case <-ctx.Done():
	}
}

// follow reads one resource's watch streams, resuming each that the
// server ends, until ctx is done (nil) or the watch must end (its error).
func (w *watcher) follow(ctx context.Context, st *stream) error {
	failures := 0
	for {
		body, err := w.open(ctx, st)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, datastore.ErrCompacted):
				return err
			case errors.Is(err, datastore.ErrUnavailable) && failures < maxResumeAttempts:
				// An API server whose watch cache has not caught up with
				// the revision asked for answers "too large resource
				// version" (a 504): try again shortly.
				failures++
			default:
				return err
			}
		} else {
			end := w.read(ctx, st, body)
			body.Close()
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(end.err, datastore.ErrCompacted) {
				return end.err
			}
			if end.err != nil {
				w.s.log.Debug("watch stream ended; resuming", "kind", w.kind, "from", st.what, "revision", st.last, "err", end.err)
			}
			if end.delivered {
				failures = 0
			} else {
				failures++
			}
			if failures > maxResumeAttempts {
				err := end.err
				if err == nil {
					err = errors.New("the server keeps ending the stream at once")
				}
				return fmt.Errorf("%w: %v", datastore.ErrUnavailable, err)
			}
		}
		if failures > 0 {
			wait := min(minResume<<(failures-1), maxResume)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// open starts a watch stream from the last revision taken.
func (w *watcher) open(ctx context.Context, st *stream) (io.ReadCloser, error) {
	if err := w.s.checkOpen(); err != nil {
		return nil, err
	}
	body, err := st.request("GET").
		Param("watch", "true").
		Param("resourceVersion", strconv.FormatInt(st.last, 10)).
		Param("allowWatchBookmarks", "true").
		Stream(ctx)
	if err != nil {
		return nil, w.s.mapError(ctx, api.Key{}, err)
	}
	return body, nil
}

// read delivers the events of one stream until it ends.
func (w *watcher) read(ctx context.Context, st *stream, body io.Reader) streamEnd {
	var end streamEnd
	events := st.format.events(body)
	for {
		we, err := events.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				end.err = err
			}
			return end
		}
		switch we.typ {
		case "ADDED", "MODIFIED", "DELETED":
			if we.err != nil {
				w.s.log.Warn("skipping undecodable watch event", "kind", w.kind, "from", st.what, "err", we.err)
				continue
			}
			end.delivered = true
			if we.rev <= st.last {
				continue // seen before the stream was resumed
			}
			st.last = we.rev
			if we.obj == nil {
				continue // an object that stands for no resource
			}
			ev := datastore.Event{Object: we.obj, Revision: we.rev}
			switch we.typ {
			case "ADDED":
				ev.Type = datastore.Added
			case "MODIFIED":
				ev.Type = datastore.Modified
			default:
				ev.Type = datastore.Deleted
			}
			if !w.send(ctx, ev) {
				return end
			}
		case "BOOKMARK":
			if we.err == nil && we.rev > st.last {
				st.last = we.rev
			}
			end.delivered = true
		case "ERROR":
			err := statusError(we.status)
			if isExpired(err) {
				end.err = fmt.Errorf("%w: %s", datastore.ErrCompacted, we.status.Message)
			} else {
				end.err = fmt.Errorf("the API server ended the watch: %w", err)
			}
			return end
		default:
			w.s.log.Warn("skipping watch event of unknown type", "kind", w.kind, "type", we.typ)
		}
	}
}

// Discovering a resource a kind is derived from that the API server did
// not serve when the watch began (ClusterNetworkPolicies installed
// later): asked after minDiscovery, doubling up to maxDiscovery.
var (
	minDiscovery = 250 * time.Millisecond
	maxDiscovery = time.Minute
)

// awaitServed waits until the API server serves st's resource (true) or
// ctx is done (false).
func (w *watcher) awaitServed(ctx context.Context, st *stream) bool {
	wait := minDiscovery
	for {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
		_, err := w.s.do(ctx, api.Key{}, st.request("GET").Param("limit", "1"))
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			return false
		case !errors.Is(err, errCRDMissing):
			w.s.log.Debug("asking whether the API server serves a resource failed", "kind", w.kind, "from", st.what, "err", err)
		}
		wait = min(2*wait, maxDiscovery)
	}
}
