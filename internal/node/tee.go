package node

import (
	"slices"

	"github.com/servalnet/serval/internal/datastore"
)

// tee lets one Syncer feed several consumers, each the kinds it follows.
// The agent lists and watches the datastore once: a second Syncer for the
// BGP loop would list every WorkloadEndpoint of the cluster a second time
// (at 100,000 endpoints, seconds of a cold start and tens of MB of keys
// it remembers).
type tee struct {
	outs []teeOut
}

type teeOut struct {
	cb    datastore.SyncerCallbacks
	names []string
	kinds map[string]bool
}

func newTee() *tee { return &tee{} }

// add registers a consumer of kinds.
func (t *tee) add(cb datastore.SyncerCallbacks, kinds []string) {
	o := teeOut{cb: cb, names: kinds, kinds: map[string]bool{}}
	for _, k := range kinds {
		o.kinds[k] = true
	}
	t.outs = append(t.outs, o)
}

// kinds is the union of every consumer's kinds, in the order first named.
func (t *tee) kinds() []string {
	var out []string
	for _, o := range t.outs {
		for _, k := range o.names {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func (t *tee) OnStatus(s datastore.Status) {
	for _, o := range t.outs {
		o.cb.OnStatus(s)
	}
}

func (t *tee) OnUpdates(us []datastore.Update) {
	for _, o := range t.outs {
		var mine []datastore.Update
		for _, u := range us {
			if o.kinds[u.Key.Kind] {
				mine = append(mine, u)
			}
		}
		if len(mine) > 0 {
			o.cb.OnUpdates(mine)
		}
	}
}
