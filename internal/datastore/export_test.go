package datastore

// SetMemoryListPageSize makes the in-memory backend list in pages of n,
// for tests of page boundaries without thousands of objects.
func SetMemoryListPageSize(m *Memory, n int) {
	m.m.mu.Lock()
	defer m.m.mu.Unlock()
	m.m.pageSize = n
}

// Resync runs one resync of s, as Run does after a failed watch, for
// tests that check what it delivers without breaking a watch.
var Resync = (*Syncer).resync
