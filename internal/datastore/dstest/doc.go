// Package dstest is the conformance suite every datastore backend must
// pass, and the small test kinds it uses ("TestThing", cluster-scoped, and
// "TestNSThing", namespaced), registered with package api when this
// package is linked, which only tests do.
//
//	func TestMyBackend(t *testing.T) {
//		dstest.Run(t, dstest.Harness{
//			New:     func(t *testing.T) datastore.Interface { return newFreshStore(t) },
//			Compact: func(t *testing.T, s datastore.Interface, rev int64) { ... },
//		})
//	}
//
// Recorder, a SyncerCallbacks that keeps what it is told, is exported for
// other packages' syncer tests.
package dstest
