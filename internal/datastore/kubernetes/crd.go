package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/selector"
)

// request starts a request on a kind's resource, in a namespace when the
// kind has them and one is given.
func (s *Store) request(verb string, info api.KindInfo, namespace, name string) *rest.Request {
	r := s.rc.Verb(verb).Resource(info.Plural)
	if info.Namespaced && namespace != "" {
		r = r.Namespace(namespace)
	}
	if name != "" {
		r = r.Name(name)
	}
	return r
}

// do sends a request with the request timeout and returns the body.
func (s *Store) do(ctx context.Context, key api.Key, r *rest.Request) ([]byte, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rctx, cancel := s.requestCtx(ctx)
	defer cancel()
	res := r.Do(rctx)
	raw, err := res.Raw()
	if err != nil {
		// Error decodes the API server's Status, which Raw leaves as an
		// unstructured error.
		return nil, s.mapError(ctx, key, res.Error())
	}
	return raw, nil
}

// get reads one object.
func (s *Store) get(ctx context.Context, info api.KindInfo, key api.Key) (api.Resource, int64, error) {
	raw, err := s.do(ctx, key, s.request("GET", info, key.Namespace, key.Name))
	if err != nil {
		return nil, 0, err
	}
	return decode(info.Kind, raw)
}

// Get implements datastore.Interface.
func (s *Store) Get(ctx context.Context, key api.Key) (api.Resource, error) {
	op := "getting " + key.String()
	info, err := checkKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if isKubeTier(key) {
		obj, err := s.getKubeTier(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		return obj, nil
	}
	if d := s.deriverOf(key); d != nil {
		obj, err := s.getDerived(ctx, d, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		return obj, nil
	}
	obj, _, err := s.get(ctx, info, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return obj, nil
}

// Create implements datastore.Interface.
func (s *Store) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	obj, err := prepare(r)
	if err != nil {
		return nil, fmt.Errorf("creating: %w", err)
	}
	m := obj.GetObjectMeta()
	if m.Name == "" && m.GenerateName != "" {
		m.Name = m.GenerateName + nameSuffix()
	}
	key := api.KeyOf(obj)
	op := "creating " + key.String()
	if err := validate(obj, op); err != nil {
		return nil, err
	}
	info, err := checkKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if n, ok := obj.(*api.Node); ok && s.deriverOf(key) == kubeNodes {
		return s.writeNode(ctx, op, n, true)
	}
	if err := s.refuseDerived(op, key); err != nil {
		return nil, err
	}
	body, err := encode(obj, "", "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	raw, err := s.do(ctx, api.Key{}, s.request("POST", info, key.Namespace, "").Body(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out, _, err := decode(info.Kind, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: created, but %w", op, err)
	}
	out, err = s.writeStatus(ctx, info, obj, out)
	if err != nil {
		return nil, fmt.Errorf("%s: created, but %w", op, err)
	}
	return out, nil
}

// Update implements datastore.Interface.
func (s *Store) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	obj, err := prepare(r)
	if err != nil {
		return nil, fmt.Errorf("updating: %w", err)
	}
	key := api.KeyOf(obj)
	op := "updating " + key.String()
	if err := validate(obj, op); err != nil {
		return nil, err
	}
	info, err := checkKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if n, ok := obj.(*api.Node); ok && s.deriverOf(key) == kubeNodes {
		return s.writeNode(ctx, op, n, false)
	}
	if err := s.refuseDerived(op, key); err != nil {
		return nil, err
	}
	m := obj.GetObjectMeta()
	want, err := parseRV(m.ResourceVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if want != 0 {
		// The API server compares the resourceVersion (and the UID, when
		// the caller has one) itself.
		out, err := s.put(ctx, info, obj, m.ResourceVersion, m.UID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		return out, nil
	}
	// Custom resources have no unconditional update: read, then write
	// with what was read as the precondition, and read again when someone
	// else wrote in between.
	for range maxUpdateAttempts {
		cur, _, err := s.get(ctx, info, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		cm := cur.GetObjectMeta()
		out, err := s.put(ctx, info, obj, cm.ResourceVersion, cm.UID)
		if errors.Is(err, datastore.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: %w (gave up after %d attempts under contention)", op, datastore.ErrConflict, maxUpdateAttempts)
}

// put replaces an object, on condition that it is still at rv (and has
// uid, when given).
func (s *Store) put(ctx context.Context, info api.KindInfo, obj api.Resource, rv, uid string) (api.Resource, error) {
	key := api.KeyOf(obj)
	body, err := encode(obj, rv, uid)
	if err != nil {
		return nil, err
	}
	raw, err := s.do(ctx, key, s.request("PUT", info, key.Namespace, key.Name).Body(body))
	if err != nil {
		return nil, err
	}
	out, _, err := decode(info.Kind, raw)
	if err != nil {
		return nil, fmt.Errorf("updated, but %w", err)
	}
	out, err = s.writeStatus(ctx, info, obj, out)
	if err != nil {
		return nil, fmt.Errorf("updated, but %w", err)
	}
	return out, nil
}

// Delete implements datastore.Interface. It reads the object first: the
// API server answers the delete of a custom resource with a Status, and
// the caller is owed the object as it was.
func (s *Store) Delete(ctx context.Context, key api.Key, resourceVersion string) (api.Resource, error) {
	op := "deleting " + key.String()
	info, err := checkKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := s.refuseDerived(op, key); err != nil {
		return nil, err
	}
	want, err := parseRV(resourceVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for range maxUpdateAttempts {
		cur, rev, err := s.get(ctx, info, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if want != 0 && rev != want {
			return nil, fmt.Errorf("%s: %w (stored %d, given %d)", op, datastore.ErrConflict, rev, want)
		}
		cm := cur.GetObjectMeta()
		rv, uid := cm.ResourceVersion, types.UID(cm.UID)
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv, UID: &uid}}
		body, err := json.Marshal(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		_, err = s.do(ctx, key, s.request("DELETE", info, key.Namespace, key.Name).Body(body))
		switch {
		case err == nil:
			return cur, nil
		case errors.Is(err, datastore.ErrConflict) && want == 0:
			continue // changed since read: read again
		default:
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return nil, fmt.Errorf("%s: %w (gave up after %d attempts under contention)", op, datastore.ErrConflict, maxUpdateAttempts)
}

// List implements datastore.Interface. A namespace given for a
// cluster-scoped kind is ignored, as with the other backends.
func (s *Store) List(ctx context.Context, opts datastore.ListOptions) (*datastore.ListResult, error) {
	for attempt := 0; ; attempt++ {
		var items []api.Resource
		rev, err := s.ListPages(ctx, opts, func(page []api.Resource, _ int64) error {
			items = append(items, page...)
			return nil
		})
		if errors.Is(err, datastore.ErrCompacted) && attempt < 3 {
			// The snapshot of the first page was compacted away before
			// the last was read (a very long list on a busy cluster):
			// nothing was handed out, so list again.
			continue
		}
		if err != nil {
			return nil, err
		}
		sortItems(items)
		if items == nil {
			items = []api.Resource{}
		}
		return &datastore.ListResult{Items: items, Revision: rev}, nil
	}
}

// ListPages implements datastore.Pager: pages in the API server's order
// (by namespace and name), all at the revision of the first. When the
// server has compacted that revision away before the last page (a
// continue token expired), it returns an error wrapping ErrCompacted and
// the caller lists again.
func (s *Store) ListPages(ctx context.Context, opts datastore.ListOptions, page func([]api.Resource, int64) error) (int64, error) {
	op := "listing " + opts.Kind
	if opts.Namespace != "" {
		op += " in namespace " + strconv.Quote(opts.Namespace)
	}
	info, err := kindInfo(opts.Kind)
	if err != nil {
		return 0, fmt.Errorf("listing: %w", err)
	}
	if strings.Contains(opts.Namespace, "/") {
		return 0, fmt.Errorf("%s: namespace must not contain '/'", op)
	}
	var labels selector.Selector
	if opts.LabelSelector != "" {
		labels, err = selector.Parse(opts.LabelSelector)
		if err != nil {
			return 0, fmt.Errorf("%s: label selector: %w", op, err)
		}
	}
	fields, err := datastore.ParseFieldSelector(opts.FieldSelector)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	keep := func(obj api.Resource) (bool, error) {
		if labels != nil && !labels.Evaluate(obj.GetObjectMeta().Labels) {
			return false, nil
		}
		if len(fields) > 0 {
			return fields.Matches(obj)
		}
		return true, nil
	}
	// Every resource the kind is read from, at the revision of the first.
	var rev int64
	for _, st := range s.streams(info, opts.Namespace) {
		var pageErr error
		r, err := s.listStream(ctx, st, rev, func(objs []decoded, listRev int64) error {
			items := make([]api.Resource, 0, len(objs))
			for _, d := range objs {
				if d.err != nil {
					// One undecodable object must not hide every other of
					// its kind (a node would then tear down all its
					// workloads).
					s.log.Warn("skipping undecodable object", "kind", info.Kind, "from", st.what, "err", d.err)
					continue
				}
				obj := d.obj
				if obj == nil {
					continue
				}
				ok, err := keep(obj)
				if err != nil {
					return err
				}
				if ok {
					items = append(items, obj)
				}
			}
			if len(items) == 0 {
				return nil
			}
			if err := page(items, listRev); err != nil {
				pageErr = err
				return err
			}
			return nil
		})
		switch {
		case pageErr != nil:
			return 0, pageErr
		case errors.Is(err, errCRDMissing) && st.derived:
			// A cluster without the resource (ClusterNetworkPolicies are
			// an add-on) derives nothing from it.
			s.log.Debug("API server does not serve a resource a kind is derived from", "kind", info.Kind, "from", st.what)
			continue
		case err != nil:
			return 0, fmt.Errorf("%s: %w", op, err)
		}
		if rev == 0 {
			rev = r
		}
	}
	if info.Kind == "Tier" {
		tiers, err := s.kubeTiers(ctx)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", op, err)
		}
		var items []api.Resource
		for _, t := range tiers {
			ok, err := keep(t)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", op, err)
			}
			if ok {
				items = append(items, t)
			}
		}
		if len(items) > 0 {
			if err := page(items, rev); err != nil {
				return 0, err
			}
		}
	}
	return rev, nil
}

// listStream lists one resource a page at a time, at revision at (the
// current one when 0), and returns the revision listed. Three stages
// overlap: the next page is asked for as soon as this one's continue
// token is read, its items are decoded while the caller digests the page
// before (each handing on at most one page ahead): on a large kind the
// API server's encoding, the decoding and the consumer each take a
// similar share.
func (s *Store) listStream(ctx context.Context, st *stream, at int64, each func([]decoded, int64) error) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		page page
		err  error
	}
	raws := make(chan fetched, 1)
	go func() {
		defer close(raws)
		cont := ""
		for {
			r := st.request("GET").Param("limit", strconv.FormatInt(s.pageSize, 10))
			switch {
			case cont != "":
				r = r.Param("continue", cont)
			case at > 0:
				r = r.Param("resourceVersion", strconv.FormatInt(at, 10)).Param("resourceVersionMatch", "Exact")
			}
			var f fetched
			raw, err := s.do(ctx, api.Key{}, r)
			if err == nil {
				f.page, err = st.format.page(raw)
			}
			f.err = err
			select {
			case raws <- f:
			case <-ctx.Done():
				return
			}
			if f.err != nil || f.page.cont == "" {
				return
			}
			cont = f.page.cont
		}
	}()
	type items struct {
		items []decoded
		rev   int64
		err   error
	}
	pages := make(chan items, 1)
	go func() {
		defer close(pages)
		for f := range raws {
			it := items{rev: f.page.rev, err: f.err}
			if it.err == nil {
				it.items, it.err = f.page.items()
			}
			select {
			case pages <- it:
			case <-ctx.Done():
				return
			}
			if it.err != nil {
				return
			}
		}
	}()
	var rev int64
	for p := range pages {
		if p.err != nil {
			return 0, p.err
		}
		if rev == 0 {
			rev = p.rev // later pages are at the first one's
		}
		if err := each(p.items, rev); err != nil {
			return 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return rev, nil
}

// currentRevision is the API server's current revision: that of a
// consistent list of at most one object.
func (s *Store) currentRevision(ctx context.Context, st *stream) (int64, error) {
	raw, err := s.do(ctx, api.Key{}, st.request("GET").Param("limit", "1"))
	if err != nil {
		return 0, err
	}
	p, err := st.format.page(raw)
	if err != nil {
		return 0, err
	}
	return p.rev, nil
}
