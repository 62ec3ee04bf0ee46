package admission

import (
	"cmp"
	"maps"
	"slices"
	"sync"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/nodestatus"
)

// Rejected is one object the agent read and could not accept. The type
// lives in nodestatus, with the rest of the status report servalctl reads.
type Rejected = nodestatus.Rejected

// Registry holds the rejected objects of one agent. It is safe for
// concurrent use: filters record from their syncers' goroutines, the
// status socket and metrics read from theirs.
type Registry struct {
	mu       sync.Mutex
	rejected map[api.Key]Rejected
	onChange func(byKind map[string]int)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{rejected: map[api.Key]Rejected{}} }

// OnChange sets a function called, outside the registry's lock, with the
// number of rejected objects of each kind whenever it changes (for a
// metric). Kinds with none are left out.
func (r *Registry) OnChange(fn func(byKind map[string]int)) {
	r.mu.Lock()
	r.onChange = fn
	r.mu.Unlock()
}

func (r *Registry) set(k api.Key, rej Rejected) {
	r.mu.Lock()
	old, had := r.rejected[k]
	r.rejected[k] = rej
	r.mu.Unlock()
	if !had || old != rej {
		r.changed(!had)
	}
}

func (r *Registry) clear(k api.Key) {
	r.mu.Lock()
	_, had := r.rejected[k]
	delete(r.rejected, k)
	r.mu.Unlock()
	if had {
		r.changed(true)
	}
}

func (r *Registry) changed(counts bool) {
	if !counts {
		return
	}
	r.mu.Lock()
	fn := r.onChange
	by := map[string]int{}
	for k := range r.rejected {
		by[k.Kind]++
	}
	r.mu.Unlock()
	if fn != nil {
		fn(by)
	}
}

// List returns the rejected objects sorted by kind, namespace and name.
func (r *Registry) List() []Rejected {
	r.mu.Lock()
	out := slices.Collect(maps.Values(r.rejected))
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Rejected) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}
