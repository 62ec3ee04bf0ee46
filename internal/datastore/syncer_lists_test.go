package datastore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// gatedPager is a memory datastore whose lists of every kind but the
// first wait until all kinds are being listed: a syncer that listed one
// kind after another would never get past the first.
type gatedPager struct {
	datastore.Interface
	kinds   int
	mu      sync.Mutex
	started int
	all     chan struct{}
	fail    string // a kind whose list fails, once every kind has started
}

var errListFailed = errors.New("scripted list failure")

func (g *gatedPager) ListPages(ctx context.Context, opts datastore.ListOptions, page func([]api.Resource, int64) error) (int64, error) {
	g.mu.Lock()
	g.started++
	if g.started == g.kinds {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("listing %s: the other kinds were not listed at the same time", opts.Kind)
	}
	if opts.Kind == g.fail {
		return 0, errListFailed
	}
	return g.Interface.(datastore.Pager).ListPages(ctx, opts, page)
}

// TestSyncerListsKindsAtOnce: a resync lists every kind at the same time
// and still hands them to the consumer in the order of its Kinds; a kind
// whose list fails fails the resync.
func TestSyncerListsKindsAtOnce(t *testing.T) {
	ctx := context.Background()
	kinds := []string{"NetworkSet", "GlobalNetworkSet", "Tier"}
	m := datastore.NewMemory(nil)
	datastore.SetMemoryListPageSize(m, 2)
	for i := range 5 {
		if _, err := m.Create(ctx, netSet("ns", fmt.Sprintf("set%d", i))); err != nil {
			t.Fatal(err)
		}
		g := &api.GlobalNetworkSet{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkSet"}, ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("g%d", i)}}
		g.Spec.Nets = []string{"10.0.0.0/8"}
		if _, err := m.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, fail, want string
	}{
		{name: "in order", want: "NetworkSet ×5, GlobalNetworkSet ×5"},
		{name: "a failed kind fails the resync", fail: "GlobalNetworkSet", want: "NetworkSet ×5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds := &gatedPager{Interface: m, kinds: len(kinds), all: make(chan struct{}), fail: c.fail}
			rec := &callRecorder{}
			sy := datastore.NewSyncer(ds, rec, datastore.SyncerConfig{Kinds: kinds})
			_, err := datastore.Resync(sy, ctx)
			switch {
			case c.fail == "" && err != nil:
				t.Fatal(err)
			case c.fail != "" && !errors.Is(err, errListFailed):
				t.Fatalf("resync: %v, want the failed list's error", err)
			}
			// Runs of one kind, in the order delivered.
			var runs []string
			var last string
			n := 0
			for _, call := range rec.calls {
				for _, u := range call {
					if u.Key.Kind != last && n > 0 {
						runs = append(runs, fmt.Sprintf("%s ×%d", last, n))
						n = 0
					}
					last = u.Key.Kind
					n++
				}
			}
			if n > 0 {
				runs = append(runs, fmt.Sprintf("%s ×%d", last, n))
			}
			if got := strings.Join(runs, ", "); got != c.want {
				t.Errorf("delivered %s, want %s", got, c.want)
			}
		})
	}
}
