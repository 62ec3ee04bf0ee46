package why

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/verdict"
)

// Snapshot is everything the calculation graph consumes, as listed from
// the datastore at one moment, plus the staged policies.
type Snapshot struct {
	Objects []api.Resource // the kinds of calc.Kinds()
	Staged  []api.Resource // staged policy kinds, when registered
}

// Load lists the datastore.
func Load(ctx context.Context, ds datastore.Interface) (*Snapshot, error) {
	s := &Snapshot{}
	for _, k := range calc.Kinds() {
		res, err := ds.List(ctx, datastore.ListOptions{Kind: k})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", k, err)
		}
		s.Objects = append(s.Objects, res.Items...)
	}
	for _, k := range stagedKinds {
		if _, ok := api.LookupKind(k); !ok {
			continue
		}
		res, err := ds.List(ctx, datastore.ListOptions{Kind: k})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", k, err)
		}
		s.Staged = append(s.Staged, res.Items...)
	}
	return s, nil
}

// Host runs the calculation graph of node over the snapshot and returns
// what it would have the node's dataplane enforce.
func (s *Snapshot) Host(node string) *verdict.Host {
	rec := verdict.NewRecorder()
	g := calc.New(node, rec, nil)
	ups := make([]datastore.Update, 0, len(s.Objects))
	for _, o := range s.Objects {
		ups = append(ups, datastore.Update{Type: datastore.Added, Key: api.KeyOf(o), Object: o})
	}
	g.OnUpdates(ups)
	g.OnStatus(datastore.InSync)
	return rec.Host
}

// Endpoint is one side of the question: a workload endpoint, a host
// endpoint, or a plain address (Kind "").
type Endpoint struct {
	Kind      string       `json:"kind,omitempty"` // WorkloadEndpoint, HostEndpoint or ""
	Namespace string       `json:"namespace,omitempty"`
	Name      string       `json:"name,omitempty"`
	Node      string       `json:"node,omitempty"`
	Addrs     []netip.Addr `json:"addresses"`
}

// String is how the endpoint is printed.
func (e Endpoint) String() string {
	switch {
	case e.Kind == "":
		return e.Addrs[0].String()
	case e.Namespace != "":
		return fmt.Sprintf("%s %s/%s on %s", e.Kind, e.Namespace, e.Name, e.Node)
	}
	return fmt.Sprintf("%s %s on %s", e.Kind, e.Name, e.Node)
}

// Resolve finds the endpoint arg names: an address (the endpoint that
// owns it, if any), namespace/name of a workload endpoint, or the name
// of a workload endpoint (unique across namespaces), of its workload or
// pod, or of a host endpoint.
func (s *Snapshot) Resolve(arg string) (Endpoint, error) {
	var all []Endpoint
	for _, o := range s.Objects {
		switch r := o.(type) {
		case *api.WorkloadEndpoint:
			e := Endpoint{Kind: "WorkloadEndpoint", Namespace: r.Namespace, Name: r.Name, Node: r.Spec.Node}
			for _, n := range r.Spec.IPNetworks {
				if p, err := netip.ParsePrefix(n); err == nil {
					e.Addrs = append(e.Addrs, p.Addr())
				} else if a, err := netip.ParseAddr(n); err == nil {
					e.Addrs = append(e.Addrs, a)
				}
			}
			all = append(all, e)
		case *api.HostEndpoint:
			e := Endpoint{Kind: "HostEndpoint", Name: r.Name, Node: r.Spec.Node}
			for _, n := range r.Spec.ExpectedIPs {
				if a, err := netip.ParseAddr(n); err == nil {
					e.Addrs = append(e.Addrs, a)
				}
			}
			all = append(all, e)
		}
	}
	if a, err := netip.ParseAddr(arg); err == nil {
		a = a.Unmap()
		var hits []Endpoint
		for _, e := range all {
			if slices.Contains(e.Addrs, a) {
				hits = append(hits, e)
			}
		}
		switch len(hits) {
		case 0:
			return Endpoint{Addrs: []netip.Addr{a}}, nil
		case 1:
			// Only the address asked for: the packet uses it.
			h := hits[0]
			h.Addrs = []netip.Addr{a}
			return h, nil
		}
		return Endpoint{}, fmt.Errorf("address %s belongs to several endpoints: %s and %s", a, hits[0], hits[1])
	}
	var hits []Endpoint
	ns, name, namespaced := strings.Cut(arg, "/")
	for _, e := range all {
		if namespaced && e.Kind == "WorkloadEndpoint" && e.Namespace == ns && e.Name == name ||
			!namespaced && e.Name == arg {
			hits = append(hits, e)
		}
	}
	if len(hits) == 0 && !namespaced {
		// The workload or pod name, as people know their containers.
		for _, o := range s.Objects {
			if w, ok := o.(*api.WorkloadEndpoint); ok && (w.Spec.Workload == arg || w.Spec.Pod == arg) {
				r, err := s.Resolve(w.Namespace + "/" + w.Name)
				if err == nil {
					hits = append(hits, r)
				}
			}
		}
	}
	switch len(hits) {
	case 0:
		return Endpoint{}, fmt.Errorf("%q is neither an address nor a workload or host endpoint in the datastore", arg)
	case 1:
		if len(hits[0].Addrs) == 0 {
			return Endpoint{}, fmt.Errorf("%s has no address", hits[0])
		}
		return hits[0], nil
	}
	return Endpoint{}, fmt.Errorf("%q names several endpoints (%s and %s): say namespace/name or give an address", arg, hits[0], hits[1])
}
