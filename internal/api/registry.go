package api

import (
	"fmt"
	"sort"
	"strings"
)

// KindInfo describes one kind: how it is named on the command line and in
// storage, whether it lives in a namespace, and how to make an empty one.
type KindInfo struct {
	Kind       string   // "GlobalNetworkPolicy"
	Plural     string   // "globalnetworkpolicies": the storage key segment and CLI plural
	ShortNames []string // "gnp": extra CLI spellings
	Namespaced bool
	// Internal kinds (IPAM blocks, handles, ...) are stored like the others
	// but are not offered to users by servalctl.
	Internal bool
	New      func() Resource
}

var kinds = map[string]KindInfo{}

// Register adds a kind. Each kind's file calls it from init; registering a
// kind twice is a programming error and panics at start-up.
func Register(info KindInfo) {
	if _, dup := kinds[info.Kind]; dup {
		panic("api: kind registered twice: " + info.Kind)
	}
	kinds[info.Kind] = info
}

// Kinds returns every registered kind, sorted by name.
func Kinds() []KindInfo {
	out := make([]KindInfo, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// LookupKind finds a kind by its name, plural or a short name, in any case:
// "IPPool", "ippool", "ippools" and "pool" all work.
func LookupKind(name string) (KindInfo, bool) {
	l := strings.ToLower(name)
	for _, k := range kinds {
		if strings.ToLower(k.Kind) == l || k.Plural == l {
			return k, true
		}
		for _, s := range k.ShortNames {
			if s == l {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// New returns an empty resource of the named kind with its TypeMeta set.
func New(kind string) (Resource, error) {
	info, ok := kinds[kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	r := info.New()
	*r.GetTypeMeta() = TypeMeta{Kind: info.Kind, APIVersion: APIVersion}
	return r, nil
}

// KindNames lists the user-facing kind names, for error messages.
func KindNames() string {
	var names []string
	for _, k := range Kinds() {
		if !k.Internal {
			names = append(names, k.Kind)
		}
	}
	return strings.Join(names, ", ")
}
