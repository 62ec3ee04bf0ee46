package datastore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Memory is an in-memory backend for unit tests. It keeps etcd's model (a
// global revision, create and modify revisions per key, a history of
// changes that Compact trims) so that code tested against it behaves the
// same against etcd, including the "compacted, list again" path.
type Memory struct {
	store
	m *memKV
}

// NewMemory returns an empty in-memory datastore. log may be nil.
func NewMemory(log *slog.Logger) *Memory {
	m := &memKV{
		rev:      1, // a fresh etcd is at revision 1 too
		data:     map[string]kvEntry{},
		watchers: map[*memWatch]struct{}{},
	}
	return &Memory{store: newStore(m, DefaultPrefix, log), m: m}
}

// Revision is the current revision: that of the latest write.
func (s *Memory) Revision() int64 {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.rev
}

// Compact discards the history before rev, as etcd's compaction does:
// watching from a revision before it then fails with ErrCompacted.
func (s *Memory) Compact(rev int64) error {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case rev > m.rev:
		return fmt.Errorf("compacting at revision %d: it is in the future (current revision %d)", rev, m.rev)
	case rev <= m.compacted:
		return fmt.Errorf("compacting at revision %d: %w (already compacted at %d)", rev, ErrCompacted, m.compacted)
	}
	m.compacted = rev
	i := sort.Search(len(m.history), func(i int) bool { return m.history[i].Entry.ModRev >= rev })
	m.history = slices.Clone(m.history[i:])
	return nil
}

// memKV is kv in memory. One mutex guards everything; watchers receive
// events through their own unbounded queues, so a writer never waits for
// a reader.
type memKV struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	data      map[string]kvEntry
	history   []kvEvent // every change since compacted, in revision order
	watchers  map[*memWatch]struct{}
	closed    bool
	pageSize  int // entries per list page (defaultListPageSize when 0)
}

func (m *memKV) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.closed {
		return fmt.Errorf("%w: the in-memory datastore is closed", ErrUnavailable)
	}
	return nil
}

// cloneEntry copies the value so that nobody shares bytes with the store.
func cloneEntry(e kvEntry) *kvEntry {
	e.Value = slices.Clone(e.Value)
	return &e
}

func (m *memKV) get(ctx context.Context, key string) (*kvEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	e, ok := m.data[key]
	if !ok {
		return nil, nil
	}
	return cloneEntry(e), nil
}

func (m *memKV) list(ctx context.Context, prefix string, page func([]kvEntry, int64) error) (int64, error) {
	m.mu.Lock()
	if err := m.check(ctx); err != nil {
		m.mu.Unlock()
		return 0, err
	}
	var out []kvEntry
	for k, e := range m.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, *cloneEntry(e))
		}
	}
	rev, size := m.rev, m.pageSize
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b kvEntry) int { return strings.Compare(a.Key, b.Key) })
	if size <= 0 {
		size = defaultListPageSize
	}
	// Pages as etcd's: the consumer sees the same boundaries in tests.
	for len(out) > 0 {
		n := min(size, len(out))
		if err := page(out[:n:n], rev); err != nil {
			return 0, err
		}
		out = out[n:]
	}
	return rev, nil
}

func (m *memKV) create(ctx context.Context, key string, val []byte) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, false, err
	}
	if _, ok := m.data[key]; ok {
		return m.rev, false, nil
	}
	m.rev++
	e := kvEntry{Key: key, Value: slices.Clone(val), CreateRev: m.rev, ModRev: m.rev}
	m.data[key] = e
	m.record(kvEvent{Entry: e})
	return m.rev, true, nil
}

func (m *memKV) update(ctx context.Context, key string, val []byte, modRev int64) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, false, err
	}
	old, ok := m.data[key]
	if !ok || old.ModRev != modRev {
		return m.rev, false, nil
	}
	m.rev++
	e := kvEntry{Key: key, Value: slices.Clone(val), CreateRev: old.CreateRev, ModRev: m.rev}
	m.data[key] = e
	m.record(kvEvent{Entry: e, Prev: &old})
	return m.rev, true, nil
}

func (m *memKV) delete(ctx context.Context, key string, modRev int64) (*kvEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, false, err
	}
	old, ok := m.data[key]
	if !ok || (modRev != 0 && old.ModRev != modRev) {
		return nil, false, nil
	}
	m.rev++
	delete(m.data, key)
	m.record(kvEvent{Deleted: true, Entry: kvEntry{Key: key, ModRev: m.rev}, Prev: &old})
	return cloneEntry(old), true, nil
}

// record appends a change to the history and hands it to every watcher
// of its key. Called with mu held. Stored values are never mutated in
// place, so events may share them.
func (m *memKV) record(ev kvEvent) {
	m.history = append(m.history, ev)
	for w := range m.watchers {
		if strings.HasPrefix(ev.Entry.Key, w.prefix) {
			w.push(ev)
		}
	}
}

func (m *memKV) watch(ctx context.Context, prefix string, start int64) <-chan kvEvent {
	w := &memWatch{prefix: prefix, out: make(chan kvEvent), wake: make(chan struct{}, 1)}
	m.mu.Lock()
	switch {
	case m.closed:
		w.push(kvEvent{Err: fmt.Errorf("%w: the in-memory datastore is closed", ErrUnavailable)})
	case start > 0 && start < m.compacted:
		w.push(kvEvent{Err: fmt.Errorf("%w (oldest revision still available is %d)", ErrCompacted, m.compacted)})
	default:
		// Replay the history and register under the one lock, so that
		// no change falls between the two.
		if start > 0 {
			for _, ev := range m.history {
				if ev.Entry.ModRev >= start && strings.HasPrefix(ev.Entry.Key, prefix) {
					w.push(ev)
				}
			}
		}
		m.watchers[w] = struct{}{}
	}
	m.mu.Unlock()
	go w.pump(ctx, func() {
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	})
	return w.out
}

func (m *memKV) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for w := range m.watchers {
		w.push(kvEvent{Err: fmt.Errorf("%w: the in-memory datastore was closed", ErrUnavailable)})
		delete(m.watchers, w)
	}
	return nil
}

// memWatch is one watcher's queue: push never blocks; pump delivers.
type memWatch struct {
	prefix string
	out    chan kvEvent
	wake   chan struct{} // size 1: merges bursts of pushes into one wake-up

	mu    sync.Mutex
	queue []kvEvent
}

func (w *memWatch) push(ev kvEvent) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *memWatch) pump(ctx context.Context, unregister func()) {
	defer close(w.out)
	defer unregister()
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Err != nil {
				return
			}
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
	}
}
