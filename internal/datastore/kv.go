package datastore

import "context"

// kv is the small key-value layer under a backend: byte values addressed by
// string keys, with etcd's revision semantics (one global revision counter;
// every entry remembers the revision that created it and the one that last
// modified it). The semantics of resources (validation, defaults, UIDs,
// resourceVersions, conflicts, selectors) live once, in store, on top of
// it, so that the in-memory backend used by unit tests behaves exactly like
// etcd above this line.
type kv interface {
	// get returns the entry at key, or nil when there is none.
	get(ctx context.Context, key string) (*kvEntry, error)
	// list calls page with every entry whose key starts with prefix, in
	// key order, a page at a time, all read at the one revision it
	// returns and passes with each page. A page's entries are page's to keep; list holds on to no
	// page once page has returned, so a caller that keeps only what it
	// needs of each never has the whole prefix in memory. An error from
	// page stops the listing and is returned as it is.
	list(ctx context.Context, prefix string, page func(entries []kvEntry, rev int64) error) (int64, error)
	// create stores val at key if nothing is there; ok is false if
	// something is. rev is the revision of the write.
	create(ctx context.Context, key string, val []byte) (rev int64, ok bool, err error)
	// update replaces the entry at key if it was last modified at modRev;
	// ok is false if it was not (or if it is gone).
	update(ctx context.Context, key string, val []byte, modRev int64) (rev int64, ok bool, err error)
	// delete removes the entry at key and returns it. modRev 0 deletes
	// whatever is there; otherwise only an entry last modified at modRev.
	// ok is false if nothing was deleted.
	delete(ctx context.Context, key string, modRev int64) (prev *kvEntry, ok bool, err error)
	// watch streams the changes to keys under prefix from revision start
	// (inclusive; 0 means from now on). The channel is closed when ctx is
	// done, or after an event with Err set.
	watch(ctx context.Context, prefix string, start int64) <-chan kvEvent
	close() error
}

// kvEntry is one stored value.
type kvEntry struct {
	Key       string
	Value     []byte
	CreateRev int64
	ModRev    int64
}

// kvEvent is one change seen by a kv watch: Entry is the state after the
// change (for a delete, only Key and ModRev, the revision of the delete,
// are set); Prev the state before it, when known.
type kvEvent struct {
	Deleted bool
	Entry   kvEntry
	Prev    *kvEntry
	Err     error // set on the last event of a failed watch
}
