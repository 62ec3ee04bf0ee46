package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	from := opts.Revision
	if from == 0 {
		from, err = s.currentRevision(ctx, info, opts.Namespace)
		if err != nil {
			return nil, fmt.Errorf("watching %s: reading the current revision: %w", opts.Kind, err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		s:         s,
		info:      info,
		namespace: opts.Namespace,
		from:      from,
		last:      from,
		out:       make(chan datastore.Event, watchBuffer),
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	s.watches.Add(1)
	go func() {
		defer s.watches.Done()
		w.run(wctx, ctx)
	}()
	return w, nil
}

// watcher follows one kind through the API server's watch streams.
type watcher struct {
	s         *Store
	info      api.KindInfo
	namespace string
	from      int64 // the revision asked for
	last      int64 // the revision of the last event or bookmark taken

	out    chan datastore.Event
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
	send := func(ev datastore.Event) bool {
		select {
		case w.out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fail := func(err error) {
		// The caller's cancellation or Stop is no failure; Close is one.
		if storeClosed.Load() && callerCtx.Err() == nil {
			err = fmt.Errorf("%w: the kubernetes datastore was closed", datastore.ErrUnavailable)
			select {
			case w.out <- datastore.Event{Type: datastore.Error, Err: fmt.Errorf("watching %s: %w", w.info.Kind, err)}:
			case <-time.After(time.Second):
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		send(datastore.Event{Type: datastore.Error, Err: fmt.Errorf("watching %s from revision %d: %w", w.info.Kind, w.from, err)})
	}
	failures := 0
	for {
		body, err := w.open(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				fail(ctx.Err())
				return
			case errors.Is(err, datastore.ErrCompacted):
				fail(err)
				return
			case errors.Is(err, datastore.ErrUnavailable) && failures < maxResumeAttempts:
				// An API server whose watch cache has not caught up with
				// the revision asked for answers "too large resource
				// version" (a 504): try again shortly.
				failures++
			default:
				fail(err)
				return
			}
		} else {
			end := w.read(ctx, body, send)
			body.Close()
			if ctx.Err() != nil {
				fail(ctx.Err())
				return
			}
			if errors.Is(end.err, datastore.ErrCompacted) {
				fail(end.err)
				return
			}
			if end.err != nil {
				w.s.log.Debug("watch stream ended; resuming", "kind", w.info.Kind, "revision", w.last, "err", end.err)
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
				fail(fmt.Errorf("%w: %v", datastore.ErrUnavailable, err))
				return
			}
		}
		if failures > 0 {
			wait := min(minResume<<(failures-1), maxResume)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				fail(ctx.Err())
				return
			}
		}
	}
}

// open starts a watch stream from the last revision taken.
func (w *watcher) open(ctx context.Context) (io.ReadCloser, error) {
	if err := w.s.checkOpen(); err != nil {
		return nil, err
	}
	r := w.s.request("GET", w.info, w.namespace, "").
		Param("watch", "true").
		Param("resourceVersion", strconv.FormatInt(w.last, 10)).
		Param("allowWatchBookmarks", "true")
	body, err := r.Stream(ctx)
	if err != nil {
		return nil, w.s.mapError(ctx, api.Key{}, err)
	}
	return body, nil
}

// wireEvent is one event of a watch stream.
type wireEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// read delivers the events of one stream until it ends.
func (w *watcher) read(ctx context.Context, body io.Reader, send func(datastore.Event) bool) streamEnd {
	var end streamEnd
	dec := json.NewDecoder(body)
	for {
		var we wireEvent
		if err := dec.Decode(&we); err != nil {
			if errors.Is(err, io.EOF) {
				return end
			}
			end.err = err
			return end
		}
		switch we.Type {
		case "ADDED", "MODIFIED", "DELETED":
			obj, rev, err := decode(w.info.Kind, we.Object)
			if err != nil {
				w.s.log.Warn("skipping undecodable watch event", "kind", w.info.Kind, "err", err)
				continue
			}
			end.delivered = true
			if rev <= w.last {
				continue // seen before the stream was resumed
			}
			w.last = rev
			ev := datastore.Event{Object: obj, Revision: rev}
			switch we.Type {
			case "ADDED":
				ev.Type = datastore.Added
			case "MODIFIED":
				ev.Type = datastore.Modified
			default:
				ev.Type = datastore.Deleted
			}
			if !send(ev) {
				return end
			}
		case "BOOKMARK":
			var b struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if json.Unmarshal(we.Object, &b) == nil {
				if rev, err := strconv.ParseInt(b.Metadata.ResourceVersion, 10, 64); err == nil && rev > w.last {
					w.last = rev
				}
			}
			end.delivered = true
		case "ERROR":
			var st metav1.Status
			if err := json.Unmarshal(we.Object, &st); err != nil {
				end.err = fmt.Errorf("undecodable error event: %w", err)
				return end
			}
			err := statusError(&st)
			if isExpired(err) {
				end.err = fmt.Errorf("%w: %s", datastore.ErrCompacted, st.Message)
			} else {
				end.err = fmt.Errorf("the API server ended the watch: %w", err)
			}
			return end
		default:
			w.s.log.Warn("skipping watch event of unknown type", "kind", w.info.Kind, "type", we.Type)
		}
	}
}
