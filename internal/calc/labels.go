package calc

import (
	"encoding/binary"
	"maps"
	"slices"
	"unique"
)

// labelTable shares label maps between entities. At 100,000 remote
// endpoints most label maps are repeats (every pod of a deployment, every
// endpoint of a namespace carry the same labels), and one map per entity
// for its own labels and another for what selectors see was the largest
// part of the graph's memory. Shared maps are never modified: flatten
// builds a new one and interns it.
type labelTable map[string]*sharedLabels

// sharedLabels is one interned map and the number of entity fields
// holding it.
type sharedLabels struct {
	key  string
	m    map[string]string
	refs int
	// members are the indexed entities that see these labels (the label
	// index lists the map once, with them).
	members map[*entity]struct{}
}

// labelsKey is a canonical form of m: its pairs sorted, each part length
// prefixed, so that no two different maps have the same key whatever
// bytes their labels hold.
func labelsKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	n := 0
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		v := m[k]
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return string(b)
}

// intern returns the shared map equal to m (a copy: m stays the
// caller's) and the reference to release when done with it. An empty map
// is nil and needs no release.
func (t labelTable) intern(m map[string]string) (map[string]string, *sharedLabels) {
	if len(m) == 0 {
		return nil, nil
	}
	k := labelsKey(m)
	if s := t[k]; s != nil {
		s.refs++
		return s.m, s
	}
	s := &sharedLabels{key: k, m: maps.Clone(m), refs: 1}
	t[k] = s
	return s.m, s
}

// release gives back one reference; the map is forgotten with its last.
func (t labelTable) release(s *sharedLabels) {
	if s == nil {
		return
	}
	s.refs--
	if s.refs <= 0 && t[s.key] == s {
		delete(t, s.key)
	}
}

// intern returns the one copy of a string the process shares (namespaces,
// service accounts, profile names repeat across 100,000 endpoints).
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// internAll interns every string of ss in place and returns it.
func internAll(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = intern(s)
	}
	return out
}
