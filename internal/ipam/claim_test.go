package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// Hosts racing to claim the same block: exactly one wins, the losers get
// errTaken and leave no affinity behind.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		ds := datastore.NewMemory(nil)
		c := New(ds, Config{})
		cidr := netip.MustParsePrefix("10.20.0.0/26")
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = c.claim(ctx, fmt.Sprint("host", i), cidr, 0) })
		}
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, errTaken):
				t.Errorf("round %d host%d: %v, want errTaken", round, i, err)
			}
		}
		affs, err := ds.List(ctx, datastore.ListOptions{Kind: "BlockAffinity"})
		if err != nil {
			t.Fatal(err)
		}
		if winners != 1 || len(affs.Items) != 1 || affs.Items[0].(*api.BlockAffinity).Spec.State != api.AffinityConfirmed {
			t.Errorf("round %d: %d winners, affinities %v; want one winner with one confirmed affinity", round, winners, affs.Items)
		}
		ds.Close()
	}
}
