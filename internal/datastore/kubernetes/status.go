package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/servalnet/serval/internal/api"
)

// Kinds with a top-level status (Node) have their CRD's status
// subresource (package crd), as Calico's have: a create or an update of
// the object leaves the status as it was, and the status is written
// through .../status. The store writes it there after the object, so that
// what a caller writes is what it reads back, as on the other backends.

var statusKinds sync.Map // kind → bool

// hasStatus reports whether a kind has a top-level "status" field.
func hasStatus(info api.KindInfo) bool {
	if v, ok := statusKinds.Load(info.Kind); ok {
		return v.(bool)
	}
	found := false
	t := reflect.TypeOf(info.New())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "status" {
				found = true
			}
		}
	}
	statusKinds.Store(info.Kind, found)
	return found
}

// statusOf is the JSON of a resource's status, "" when it has none.
func statusOf(r api.Resource) (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encoding %s: %w", api.KeyOf(r), err)
	}
	var m struct {
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("encoding %s: %w", api.KeyOf(r), err)
	}
	switch s := string(m.Status); s {
	case "", "null", "{}":
		return "", nil
	default:
		return s, nil
	}
}

// writeStatus makes the status of written, the server's answer to a
// create or update, the one of want, through the status subresource,
// when the kind has one and they differ. It returns the object as stored.
func (s *Store) writeStatus(ctx context.Context, info api.KindInfo, want, written api.Resource) (api.Resource, error) {
	if !hasStatus(info) {
		return written, nil
	}
	ws, err := statusOf(want)
	if err != nil {
		return nil, err
	}
	gs, err := statusOf(written)
	if err != nil {
		return nil, err
	}
	if ws == gs {
		return written, nil
	}
	key := api.KeyOf(written)
	wm := written.GetObjectMeta()
	body, err := encode(want, wm.ResourceVersion, wm.UID)
	if err != nil {
		return nil, err
	}
	raw, err := s.do(ctx, key, s.request("PUT", info, key.Namespace, key.Name).SubResource("status").Body(body))
	if err != nil {
		return nil, fmt.Errorf("writing the status: %w", err)
	}
	out, _, err := decode(info.Kind, raw)
	if err != nil {
		return nil, fmt.Errorf("status written, but %w", err)
	}
	return out, nil
}
