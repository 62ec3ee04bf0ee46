package datastore

import (
	"context"
	"errors"

	"github.com/servalnet/serval/internal/api"
)

// Interface is the one way every part of Serval reads and writes state.
// Implementations are safe for concurrent use.
//
// Every write validates the resource (api.Validate) after filling in its
// defaults (SetDefaults), so nothing invalid is ever stored. Resources
// returned are fresh copies that the caller may modify.
type Interface interface {
	// Create stores a new resource. It sets UID, CreationTimestamp and
	// ResourceVersion; it fails with ErrAlreadyExists if the key is taken.
	Create(ctx context.Context, r api.Resource) (api.Resource, error)
	// Update replaces an existing resource. When r carries a
	// ResourceVersion, the write succeeds only if the stored resource still
	// has that version and fails with ErrConflict otherwise; without one it
	// replaces whatever is stored. UID and CreationTimestamp are kept from
	// the stored resource. ErrNotFound if there is nothing to update.
	Update(ctx context.Context, r api.Resource) (api.Resource, error)
	// Delete removes a resource and returns it as it was. A non-empty
	// resourceVersion makes the delete conditional (ErrConflict).
	Delete(ctx context.Context, key api.Key, resourceVersion string) (api.Resource, error)
	// Get returns one resource or ErrNotFound.
	Get(ctx context.Context, key api.Key) (api.Resource, error)
	// List returns the resources of one kind that match the options,
	// sorted by namespace then name, and the revision they were read at.
	List(ctx context.Context, opts ListOptions) (*ListResult, error)
	// Watch streams changes after opts.Revision. If that revision has been
	// compacted away the watcher sends one event with Err wrapping
	// ErrCompacted and closes; the caller lists again (Syncer does this).
	Watch(ctx context.Context, opts WatchOptions) (Watcher, error)
	// Close releases connections.
	Close() error
}

// Pager is implemented by datastores that can list a kind a page at a
// time (Etcd and Memory do). ListPages calls page with the resources that
// match opts, in storage-key order (not List's namespace-then-name
// order), a page at a time, all from one snapshot whose revision it
// returns and passes with every page. The resources are fresh copies the callee may keep; the
// datastore keeps no reference to a page once page has returned, so a
// consumer that keeps only what it needs of each never holds the whole
// kind at once (Syncer uses this for its lists). An error from page stops
// the listing and is returned as it is. A wrapper that embeds a backend
// to change what List does must change ListPages too, or Syncer bypasses
// it.
type Pager interface {
	ListPages(ctx context.Context, opts ListOptions, page func(items []api.Resource, revision int64) error) (revision int64, err error)
}

// ListOptions selects what List returns.
type ListOptions struct {
	Kind string // required
	// Namespace limits a namespaced kind to one namespace; "" means all.
	Namespace string
	// LabelSelector is a selector expression (see package selector) that
	// the resource's metadata.labels must match; "" matches everything.
	LabelSelector string
	// FieldSelector is a comma-separated list of path=value or path!=value
	// terms on the resource's JSON fields, e.g. "spec.node=host1".
	FieldSelector string
}

// ListResult is a consistent snapshot of one kind.
type ListResult struct {
	Items    []api.Resource
	Revision int64 // pass to WatchOptions.Revision to see every later change
}

// WatchOptions selects what Watch streams.
type WatchOptions struct {
	Kind      string // required
	Namespace string // "" means all namespaces
	// Revision: events for changes made after this revision are sent. 0
	// means from now on.
	Revision int64
}

// EventType says what happened to a resource.
type EventType int

const (
	Added EventType = iota + 1
	Modified
	Deleted
	// Error events carry Err; the watcher is closed after one.
	Error
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "Added"
	case Modified:
		return "Modified"
	case Deleted:
		return "Deleted"
	case Error:
		return "Error"
	}
	return "Unknown"
}

// Event is one change. For Deleted, Object is the resource as it was last
// stored. Revision is the datastore revision of the change.
type Event struct {
	Type     EventType
	Object   api.Resource
	Previous api.Resource // the state before a Modified or Deleted, when known
	Revision int64
	Err      error
}

// Watcher is a stream of events. Stop is idempotent and closes Events.
type Watcher interface {
	Events() <-chan Event
	Stop()
}

// Errors that callers test with errors.Is. Backends wrap them with what
// failed and on what.
var (
	ErrNotFound      = errors.New("resource does not exist")
	ErrAlreadyExists = errors.New("resource already exists")
	ErrConflict      = errors.New("resource was modified since it was read (resourceVersion mismatch)")
	ErrCompacted     = errors.New("requested revision has been compacted")
	ErrUnavailable   = errors.New("datastore is unavailable")
)

var (
	_ Pager = (*Etcd)(nil)
	_ Pager = (*Memory)(nil)
)
