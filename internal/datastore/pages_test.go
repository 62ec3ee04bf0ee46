package datastore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
)

// pagedBackends are the backends, each set to list in pages of 3.
func pagedBackends(t *testing.T) map[string]func(t *testing.T) datastore.Interface {
	return map[string]func(t *testing.T) datastore.Interface{
		"memory": func(t *testing.T) datastore.Interface {
			m := datastore.NewMemory(nil)
			datastore.SetMemoryListPageSize(m, 3)
			return m
		},
		"etcd": func(t *testing.T) datastore.Interface {
			srv := startEtcd(t, embedetcd.Config{})
			return newEtcd(t, datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}, ListPageSize: 3})
		},
	}
}

func netSet(ns, name string) api.Resource {
	n := &api.NetworkSet{TypeMeta: api.TypeMeta{Kind: "NetworkSet"}, ObjectMeta: api.ObjectMeta{Namespace: ns, Name: name}}
	n.Spec.Nets = []string{"10.0.0.0/8"}
	return n
}

// TestListPages: a list of 7 in pages of 3 is 3+3+1 resources in key
// order, every page from the snapshot of the first (a write made while
// listing is not in it), and List, built on it, still returns everything
// sorted. An error from the consumer stops the listing and comes back as
// it is.
func TestListPages(t *testing.T) {
	for name, mk := range pagedBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := mk(t)
			var want []string
			for i := range 7 {
				ns := fmt.Sprintf("ns%d", i%2)
				if _, err := s.Create(ctx, netSet(ns, fmt.Sprintf("set%d", i))); err != nil {
					t.Fatal(err)
				}
				want = append(want, ns+"/"+fmt.Sprintf("set%d", i))
			}
			slices.Sort(want)

			var sizes []int
			var got []string
			var revs []int64
			var during api.Resource
			rev, err := s.(datastore.Pager).ListPages(ctx, datastore.ListOptions{Kind: "NetworkSet"}, func(items []api.Resource, r int64) error {
				sizes = append(sizes, len(items))
				revs = append(revs, r)
				for _, it := range items {
					got = append(got, it.GetObjectMeta().Namespace+"/"+it.GetObjectMeta().Name)
				}
				if during == nil {
					var err error
					if during, err = s.Create(ctx, netSet("ns1", "zlate")); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sizes, []int{3, 3, 1}) {
				t.Errorf("page sizes %v, want [3 3 1]", sizes)
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %v\nwant %v (key order, without what was written while listing)", got, want)
			}
			for _, r := range revs {
				if r != rev {
					t.Errorf("page revisions %v, list revision %d: want all the same", revs, rev)
					break
				}
			}
			if rv := rvOf(t, during); rev >= rv {
				t.Errorf("list revision %d is not before the write made while listing (%d)", rev, rv)
			}

			res, err := s.List(ctx, datastore.ListOptions{Kind: "NetworkSet"})
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, it := range res.Items {
				all = append(all, it.GetObjectMeta().Namespace+"/"+it.GetObjectMeta().Name)
			}
			if w := append(slices.Clone(want), "ns1/zlate"); !slices.Equal(all, slices.Sorted(slices.Values(w))) {
				t.Errorf("List = %v, want %v", all, w)
			}

			// Page boundaries: none, exactly one page, exactly two.
			for _, tc := range []struct {
				n    int
				want []int
			}{{0, nil}, {3, []int{3}}, {6, []int{3, 3}}} {
				ns := fmt.Sprintf("size%d", tc.n)
				for i := range tc.n {
					if _, err := s.Create(ctx, netSet(ns, fmt.Sprintf("s%d", i))); err != nil {
						t.Fatal(err)
					}
				}
				var sizes []int
				if _, err := s.(datastore.Pager).ListPages(ctx, datastore.ListOptions{Kind: "NetworkSet", Namespace: ns}, func(items []api.Resource, _ int64) error {
					sizes = append(sizes, len(items))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(sizes, tc.want) {
					t.Errorf("%d resources: pages %v, want %v", tc.n, sizes, tc.want)
				}
			}

			stop := errors.New("consumer stops")
			calls := 0
			_, err = s.(datastore.Pager).ListPages(ctx, datastore.ListOptions{Kind: "NetworkSet"}, func([]api.Resource, int64) error {
				calls++
				return stop
			})
			if err != stop || calls != 1 {
				t.Errorf("a consumer's error: ListPages returned %v after %d pages, want it as it is after 1", err, calls)
			}
		})
	}
}

func rvOf(t *testing.T, r api.Resource) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(r.GetObjectMeta().ResourceVersion, &n); err != nil {
		t.Fatalf("resourceVersion %q: %v", r.GetObjectMeta().ResourceVersion, err)
	}
	return n
}

// callRecorder keeps each OnUpdates call apart.
type callRecorder struct{ calls [][]datastore.Update }

func (r *callRecorder) OnStatus(datastore.Status)      {}
func (r *callRecorder) OnUpdates(u []datastore.Update) { r.calls = append(r.calls, u) }

func (r *callRecorder) summary() string {
	var out []string
	for _, c := range r.calls {
		for _, u := range c {
			out = append(out, fmt.Sprintf("%v %s/%s", u.Type, u.Key.Namespace, u.Key.Name))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// TestSyncerResyncPages: a syncer on a paging datastore delivers each
// page as it comes, and a later resync delivers only the differences,
// with a deletion it found by listing carrying the key and the last
// resourceVersion delivered (the syncer keeps no object).
func TestSyncerResyncPages(t *testing.T) {
	for name, mk := range pagedBackends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := mk(t)
			var objs []api.Resource
			for i := range 5 {
				o, err := s.Create(ctx, netSet("ns", fmt.Sprintf("set%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, o)
			}
			rec := &callRecorder{}
			sy := datastore.NewSyncer(s, rec, datastore.SyncerConfig{Kinds: []string{"NetworkSet"}})
			if _, err := datastore.Resync(sy, ctx); err != nil {
				t.Fatal(err)
			}
			if len(rec.calls) != 2 {
				t.Errorf("first resync: %d OnUpdates calls, want one per page (2)", len(rec.calls))
			}
			if got, want := rec.summary(), "Added ns/set0, Added ns/set1, Added ns/set2, Added ns/set3, Added ns/set4"; got != want {
				t.Errorf("first resync: %s\nwant %s", got, want)
			}

			rec.calls = nil
			if _, err := s.Delete(ctx, api.KeyOf(objs[1]), ""); err != nil {
				t.Fatal(err)
			}
			upd := objs[3].(*api.NetworkSet)
			upd.Spec.Nets = []string{"10.9.0.0/16"}
			if _, err := s.Update(ctx, upd); err != nil {
				t.Fatal(err)
			}
			revs, err := datastore.Resync(sy, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rec.summary(), "Deleted ns/set1, Modified ns/set3"; got != want {
				t.Errorf("second resync: %s\nwant %s", got, want)
			}
			for _, c := range rec.calls {
				for _, u := range c {
					if u.Revision != revs["NetworkSet"] {
						t.Errorf("%v %v: revision %d, want the list's %d", u.Type, u.Key, u.Revision, revs["NetworkSet"])
					}
					if u.Object == nil || api.KeyOf(u.Object) != u.Key {
						t.Errorf("%v %v carries object %v", u.Type, u.Key, u.Object)
						continue
					}
					if u.Type == datastore.Deleted && u.Object.GetObjectMeta().ResourceVersion != objs[1].GetObjectMeta().ResourceVersion {
						t.Errorf("Deleted %v: resourceVersion %q, want the last delivered %q", u.Key, u.Object.GetObjectMeta().ResourceVersion, objs[1].GetObjectMeta().ResourceVersion)
					}
				}
			}
		})
	}
}
