package datastore_test

import (
	"testing"

	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
)

func TestMemoryConformance(t *testing.T) {
	dstest.Run(t, dstest.Harness{
		New: func(t *testing.T) datastore.Interface { return datastore.NewMemory(nil) },
		Compact: func(t *testing.T, s datastore.Interface, rev int64) {
			t.Helper()
			if err := s.(*datastore.Memory).Compact(rev); err != nil {
				t.Fatal(err)
			}
		},
	})
}
