package datastore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/selector"
)

// DefaultPrefix is where resources live in etcd unless configured
// otherwise: /serval/v3/<plural>/[<namespace>/]<name>.
const DefaultPrefix = "/serval/v3"

// maxUpdateAttempts bounds the read-modify-write loop of an unconditional
// Update under contention; past it the update reports a conflict rather
// than spinning.
const maxUpdateAttempts = 64

// watchBuffer is how many events a watcher holds for a slow reader before
// the backend waits for it.
const watchBuffer = 128

// store implements Interface on top of a kv: everything about resources
// that does not depend on the backend.
type store struct {
	kv     kv
	prefix string // without a trailing slash
	log    *slog.Logger
}

func newStore(k kv, prefix string, log *slog.Logger) store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	prefix = "/" + strings.Trim(prefix, "/")
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return store{kv: k, prefix: prefix, log: log}
}

// kindInfo finds a registered kind by its exact name.
func kindInfo(kind string) (api.KindInfo, error) {
	if kind == "" {
		return api.KindInfo{}, errors.New("kind is required")
	}
	info, ok := api.LookupKind(kind)
	if !ok || info.Kind != kind {
		return api.KindInfo{}, fmt.Errorf("%q is not a known kind", kind)
	}
	return info, nil
}

// kindPrefix is the key prefix of every resource of a kind, or of one
// namespace of a namespaced kind. It ends in a slash so that the prefix of
// "ippools" does not also match "ippoolsx".
func (s *store) kindPrefix(info api.KindInfo, namespace string) string {
	p := s.prefix + "/" + info.Plural + "/"
	if info.Namespaced && namespace != "" {
		p += namespace + "/"
	}
	return p
}

// keyPath is the storage key of one resource. It refuses keys that would
// escape their kind's part of the key space.
func (s *store) keyPath(k api.Key) (api.KindInfo, string, error) {
	info, err := kindInfo(k.Kind)
	if err != nil {
		return info, "", err
	}
	if k.Name == "" {
		return info, "", errors.New("name is required")
	}
	if strings.Contains(k.Name, "/") || strings.Contains(k.Namespace, "/") {
		return info, "", errors.New("name and namespace must not contain '/'")
	}
	switch {
	case info.Namespaced && k.Namespace == "":
		return info, "", fmt.Errorf("%s is namespaced: a namespace is required", info.Kind)
	case !info.Namespaced && k.Namespace != "":
		return info, "", fmt.Errorf("%s is not namespaced: no namespace may be given", info.Kind)
	}
	return info, s.kindPrefix(info, k.Namespace) + k.Name, nil
}

// prepare copies r (so that nothing the caller holds is shared with the
// store), fills in defaults and validates it.
func prepare(r api.Resource) (api.Resource, error) {
	if r == nil || reflect.ValueOf(r).IsNil() {
		return nil, errors.New("no resource given")
	}
	if _, err := kindInfo(r.GetTypeMeta().Kind); err != nil {
		return nil, err
	}
	obj, err := copyResource(r)
	if err != nil {
		return nil, err
	}
	// Resources built in Go code rarely spell out their apiVersion; the
	// kind already says which API they belong to.
	if tm := obj.GetTypeMeta(); tm.APIVersion == "" {
		tm.APIVersion = api.APIVersion
	}
	return obj, nil
}

// validate fills in defaults and checks obj; a rejection wraps the
// *api.ValidationError, whose every line already names the resource.
func validate(obj api.Resource, op string) error {
	obj.SetDefaults()
	if err := api.Validate(obj); err != nil {
		return fmt.Errorf("%s: invalid resource not stored:\n%w", op, err)
	}
	return nil
}

// copyResource returns a deep copy of r by way of its JSON form, which is
// also how it is stored, so the copy holds exactly what the store keeps.
func copyResource(r api.Resource) (api.Resource, error) {
	kind := r.GetTypeMeta().Kind
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", api.KeyOf(r), err)
	}
	out, err := api.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("copying %s: %w", api.KeyOf(r), err)
	}
	return out, nil
}

// encode is the stored form: JSON without the resourceVersion, which is
// the entry's modification revision and so cannot be known before the
// write.
func encode(obj api.Resource) ([]byte, error) {
	m := obj.GetObjectMeta()
	rv := m.ResourceVersion
	m.ResourceVersion = ""
	b, err := json.Marshal(obj)
	m.ResourceVersion = rv
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", api.KeyOf(obj), err)
	}
	return b, nil
}

// decode turns a stored entry into a fresh resource of the given kind,
// with its resourceVersion.
func decode(kind string, e *kvEntry) (api.Resource, error) {
	obj, err := api.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(e.Value, obj); err != nil {
		return nil, fmt.Errorf("decoding %s stored at %q: %w", kind, e.Key, err)
	}
	*obj.GetTypeMeta() = api.TypeMeta{Kind: kind, APIVersion: api.APIVersion}
	obj.GetObjectMeta().ResourceVersion = strconv.FormatInt(e.ModRev, 10)
	return obj, nil
}

// parseRV reads a resourceVersion; "" is 0, meaning unconditional.
func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a revision this datastore wrote: %w", rv, ErrConflict)
	}
	return n, nil
}

// nameSuffix is appended to metadata.generateName, as Kubernetes does.
func nameSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Create implements Interface.
func (s *store) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	obj, err := prepare(r)
	if err != nil {
		return nil, fmt.Errorf("creating: %w", err)
	}
	m := obj.GetObjectMeta()
	if m.Name == "" && m.GenerateName != "" {
		m.Name = m.GenerateName + nameSuffix()
	}
	key := api.KeyOf(obj)
	op := "creating " + key.String()
	if err := validate(obj, op); err != nil {
		return nil, err
	}
	_, path, err := s.keyPath(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	m.UID = uuid.NewString()
	m.CreationTimestamp = &now
	m.Generation = 1
	m.DeletionTimestamp = nil
	val, err := encode(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	rev, ok, err := s.kv.create(ctx, path, val)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", op, ErrAlreadyExists)
	}
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	return obj, nil
}

// Update implements Interface.
func (s *store) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	obj, err := prepare(r)
	if err != nil {
		return nil, fmt.Errorf("updating: %w", err)
	}
	key := api.KeyOf(obj)
	op := "updating " + key.String()
	if err := validate(obj, op); err != nil {
		return nil, err
	}
	_, path, err := s.keyPath(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	m := obj.GetObjectMeta()
	want, err := parseRV(m.ResourceVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// A resource just read from the store carries its resourceVersion,
	// UID and creation time: when the entry is still at that revision it
	// is the very object read, so the UID and creation time already are
	// the stored ones and one compare-and-swap does it, without a read
	// first (IPAM writes a block this way on every allocation). Only a
	// lost compare-and-swap reads, to tell NotFound from Conflict.
	if want != 0 && m.UID != "" && m.CreationTimestamp != nil {
		m.Generation++
		val, err := encode(obj)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		rev, ok, err := s.kv.update(ctx, path, val, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if ok {
			m.ResourceVersion = strconv.FormatInt(rev, 10)
			return obj, nil
		}
		cur, err := s.kv.get(ctx, path)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: %w", op, err)
		case cur == nil:
			return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
		default:
			return nil, fmt.Errorf("%s: %w (stored %d, given %d)", op, ErrConflict, cur.ModRev, want)
		}
	}
	// Read, carry over what the datastore owns, then write only if the
	// entry is still the one read. An unconditional update retries when
	// someone else wrote in between, so that it never clobbers a UID it
	// did not see.
	for range maxUpdateAttempts {
		cur, err := s.kv.get(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if cur == nil {
			return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
		}
		if want != 0 && cur.ModRev != want {
			return nil, fmt.Errorf("%s: %w (stored %d, given %d)", op, ErrConflict, cur.ModRev, want)
		}
		old, err := decode(key.Kind, cur)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		om := old.GetObjectMeta()
		m.UID = om.UID
		m.CreationTimestamp = om.CreationTimestamp
		m.Generation = om.Generation + 1
		m.DeletionTimestamp = om.DeletionTimestamp
		val, err := encode(obj)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		rev, ok, err := s.kv.update(ctx, path, val, cur.ModRev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if ok {
			m.ResourceVersion = strconv.FormatInt(rev, 10)
			return obj, nil
		}
		// Lost a race: the next read tells NotFound from Conflict, or
		// gives an unconditional update a fresh base.
	}
	return nil, fmt.Errorf("%s: %w (gave up after %d attempts under contention)", op, ErrConflict, maxUpdateAttempts)
}

// Delete implements Interface.
func (s *store) Delete(ctx context.Context, key api.Key, resourceVersion string) (api.Resource, error) {
	op := "deleting " + key.String()
	_, path, err := s.keyPath(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	want, err := parseRV(resourceVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	prev, ok, err := s.kv.delete(ctx, path, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		if want == 0 {
			return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
		}
		cur, err := s.kv.get(ctx, path)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: %w", op, err)
		case cur == nil:
			return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
		default:
			return nil, fmt.Errorf("%s: %w (stored %d, given %d)", op, ErrConflict, cur.ModRev, want)
		}
	}
	if prev == nil {
		// The backend could not return what it deleted; the delete
		// itself succeeded, so say so rather than fail.
		obj, _ := api.New(key.Kind)
		*obj.GetObjectMeta() = api.ObjectMeta{Name: key.Name, Namespace: key.Namespace}
		return obj, nil
	}
	obj, err := decode(key.Kind, prev)
	if err != nil {
		return nil, fmt.Errorf("%s: deleted, but %w", op, err)
	}
	return obj, nil
}

// Get implements Interface.
func (s *store) Get(ctx context.Context, key api.Key) (api.Resource, error) {
	op := "getting " + key.String()
	_, path, err := s.keyPath(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	e, err := s.kv.get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if e == nil {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	obj, err := decode(key.Kind, e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return obj, nil
}

// List implements Interface. A namespace given for a cluster-scoped kind
// is ignored, as calicoctl does, so that one -n flag can apply to a
// mixed set of kinds.
func (s *store) List(ctx context.Context, opts ListOptions) (*ListResult, error) {
	var items []api.Resource
	rev, err := s.ListPages(ctx, opts, func(page []api.Resource, _ int64) error {
		items = append(items, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Keys sort by "namespace/name" bytes, which is not (namespace, name)
	// order when a namespace holds '-' or '.'; sort explicitly.
	slices.SortFunc(items, func(a, b api.Resource) int {
		am, bm := a.GetObjectMeta(), b.GetObjectMeta()
		if c := strings.Compare(am.Namespace, bm.Namespace); c != 0 {
			return c
		}
		return strings.Compare(am.Name, bm.Name)
	})
	if items == nil {
		items = []api.Resource{}
	}
	return &ListResult{Items: items, Revision: rev}, nil
}

// ListPages implements Pager.
func (s *store) ListPages(ctx context.Context, opts ListOptions, page func([]api.Resource, int64) error) (int64, error) {
	op := "listing " + opts.Kind
	if opts.Namespace != "" {
		op += " in namespace " + strconv.Quote(opts.Namespace)
	}
	info, err := kindInfo(opts.Kind)
	if err != nil {
		return 0, fmt.Errorf("listing: %w", err)
	}
	if strings.Contains(opts.Namespace, "/") {
		return 0, fmt.Errorf("%s: namespace must not contain '/'", op)
	}
	var labels selector.Selector
	if opts.LabelSelector != "" {
		labels, err = selector.Parse(opts.LabelSelector)
		if err != nil {
			return 0, fmt.Errorf("%s: label selector: %w", op, err)
		}
	}
	fields, err := ParseFieldSelector(opts.FieldSelector)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	// Three stages, so that on a multi-core host the next page is fetched
	// and decoded while the consumer digests this one: at 100,000
	// endpoints fetching, decoding and consuming each take about as long.
	// page is still called from the caller's goroutine, in order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type rawPage struct {
		entries []kvEntry
		rev     int64
	}
	type decodedPage struct {
		items []api.Resource
		rev   int64
		err   error
	}
	raw := make(chan rawPage, 1)
	decoded := make(chan decodedPage, 1)
	var wg sync.WaitGroup
	var rev int64
	var listErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(raw)
		rev, listErr = s.kv.list(ctx, s.kindPrefix(info, opts.Namespace), func(entries []kvEntry, rev int64) error {
			select {
			case raw <- rawPage{entries, rev}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	go func() {
		defer wg.Done()
		defer close(decoded)
		for p := range raw {
			items, err := s.decodePage(info.Kind, p.entries, labels, fields)
			if err != nil {
				err = fmt.Errorf("%s: %w", op, err)
			}
			select {
			case decoded <- decodedPage{items, p.rev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var stopErr error // why the listing stopped early, returned as it is
	for d := range decoded {
		if d.err == nil && len(d.items) > 0 {
			d.err = page(d.items, d.rev)
		}
		if d.err != nil {
			stopErr = d.err
			cancel()
			for range decoded {
			}
			break
		}
	}
	wg.Wait()
	if stopErr != nil {
		return 0, stopErr
	}
	if listErr != nil {
		return 0, fmt.Errorf("%s: %w", op, listErr)
	}
	return rev, nil
}

// decodePage decodes one page of entries and keeps those that match the
// selectors.
func (s *store) decodePage(kind string, entries []kvEntry, labels selector.Selector, fields FieldSelector) ([]api.Resource, error) {
	items := make([]api.Resource, 0, len(entries))
	for i := range entries {
		obj, err := decode(kind, &entries[i])
		if err != nil {
			// One corrupt entry must not hide every other resource of its
			// kind (a node would then tear down all its workloads).
			s.log.Warn("skipping undecodable entry", "key", entries[i].Key, "err", err)
			continue
		}
		if labels != nil && !labels.Evaluate(obj.GetObjectMeta().Labels) {
			continue
		}
		if len(fields) > 0 {
			ok, err := fields.Matches(obj)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		items = append(items, obj)
	}
	return items, nil
}

// Watch implements Interface. The watcher also stops when ctx is done.
func (s *store) Watch(ctx context.Context, opts WatchOptions) (Watcher, error) {
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
	start := int64(0)
	if opts.Revision > 0 {
		start = opts.Revision + 1
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		out:    make(chan Event, watchBuffer),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	in := s.kv.watch(wctx, s.kindPrefix(info, opts.Namespace), start)
	go w.run(wctx, s.log, info.Kind, opts.Revision, in)
	return w, nil
}

// Close implements Interface.
func (s *store) Close() error { return s.kv.close() }

// watcher turns kv events into resource events.
type watcher struct {
	out    chan Event
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (w *watcher) Events() <-chan Event { return w.out }

// Stop implements Watcher: it returns once Events is closed.
func (w *watcher) Stop() {
	w.once.Do(w.cancel)
	<-w.done
}

func (w *watcher) run(ctx context.Context, log *slog.Logger, kind string, from int64, in <-chan kvEvent) {
	defer close(w.done)
	defer close(w.out)
	defer w.cancel()
	send := func(ev Event) bool {
		select {
		case w.out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		var kev kvEvent
		var open bool
		select {
		case kev, open = <-in:
		case <-ctx.Done():
			return
		}
		if !open {
			if ctx.Err() == nil {
				// The backend ended the watch without saying why (its
				// client was closed, say): the caller must list again.
				send(Event{Type: Error, Err: fmt.Errorf("watching %s: watch ended: %w", kind, ErrUnavailable)})
			}
			return
		}
		if kev.Err != nil {
			send(Event{Type: Error, Err: fmt.Errorf("watching %s from revision %d: %w", kind, from, kev.Err)})
			return
		}
		ev, err := toEvent(kind, kev)
		if err != nil {
			log.Warn("skipping undecodable watch event", "kind", kind, "key", kev.Entry.Key, "err", err)
			continue
		}
		if !send(ev) {
			return
		}
	}
}

func toEvent(kind string, kev kvEvent) (Event, error) {
	ev := Event{Revision: kev.Entry.ModRev}
	var prev api.Resource
	if kev.Prev != nil {
		p, err := decode(kind, kev.Prev)
		if err != nil {
			return ev, err
		}
		prev = p
	}
	switch {
	case kev.Deleted:
		if prev == nil {
			return ev, fmt.Errorf("delete of %q at revision %d without its previous value", kev.Entry.Key, kev.Entry.ModRev)
		}
		ev.Type, ev.Object = Deleted, prev
		// Previous is documented for Deleted too: give a separate copy
		// so that a consumer changing one does not change the other.
		ev.Previous, _ = copyResource(prev)
	default:
		obj, err := decode(kind, &kev.Entry)
		if err != nil {
			return ev, err
		}
		ev.Object, ev.Previous = obj, prev
		ev.Type = Modified
		if kev.Entry.CreateRev == kev.Entry.ModRev {
			ev.Type = Added
			ev.Previous = nil
		}
	}
	return ev, nil
}
