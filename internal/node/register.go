package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// Identity is what a host says about itself in its Node resource.
type Identity struct {
	Name     string
	IPv4     netip.Prefix // zero: none
	IPv6     netip.Prefix // zero: none
	ASNumber string       // "" keeps what the Node has (or the cluster default)
}

// registerRetries bounds how often Register re-reads a Node that another
// writer changed between our read and our write.
const registerRetries = 5

// Register creates this host's Node or updates its BGP addresses (and AS
// number, when given), leaving every other field — labels an operator set,
// a route reflector cluster ID — as it is.
func Register(ctx context.Context, ds datastore.Interface, id Identity) (*api.Node, error) {
	key := api.Key{Kind: "Node", Name: id.Name}
	for attempt := 0; ; attempt++ {
		r, err := ds.Get(ctx, key)
		var n *api.Node
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			fresh, _ := api.New("Node")
			n = fresh.(*api.Node)
			n.Name = id.Name
		case err != nil:
			return nil, fmt.Errorf("registering node %q: %w", id.Name, err)
		default:
			n = r.(*api.Node)
		}
		if !apply(n, id) && n.ResourceVersion != "" {
			return n, nil // already as it should be
		}
		var out api.Resource
		if n.ResourceVersion == "" {
			out, err = ds.Create(ctx, n)
		} else {
			out, err = ds.Update(ctx, n)
		}
		if (errors.Is(err, datastore.ErrConflict) || errors.Is(err, datastore.ErrAlreadyExists)) && attempt < registerRetries {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registering node %q: %w", id.Name, err)
		}
		return out.(*api.Node), nil
	}
}

// apply writes id into n and reports whether anything changed.
func apply(n *api.Node, id Identity) bool {
	if n.Spec.BGP == nil {
		n.Spec.BGP = &api.NodeBGPSpec{}
	}
	b := n.Spec.BGP
	changed := false
	set := func(dst *string, v string) {
		if *dst != v {
			*dst, changed = v, true
		}
	}
	set(&b.IPv4Address, prefixString(id.IPv4))
	set(&b.IPv6Address, prefixString(id.IPv6))
	if id.ASNumber != "" && (b.ASNumber == nil || b.ASNumber.String() != id.ASNumber) {
		asn := api.ASNumberFromString(id.ASNumber)
		b.ASNumber, changed = &asn, true
	}
	return changed
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
