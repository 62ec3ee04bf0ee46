package dstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// Harness is what Run needs from a backend.
type Harness struct {
	// New returns a fresh, empty store. Run closes it when the subtest
	// ends.
	New func(t *testing.T) datastore.Interface
	// Compact discards the history of s before rev.
	Compact func(t *testing.T, s datastore.Interface, rev int64)
	// WatchWithoutPrevious says that the backend's watch carries only the
	// new state of each change, as the Kubernetes API's does: a Modified
	// event has no Previous, and a Deleted event's object is the last
	// stored state with the delete's revision as its resourceVersion. The
	// suite then checks exactly that instead (datastore.Event documents
	// Previous as "when known").
	WatchWithoutPrevious bool
}

// timeout bounds every wait of the suite: long enough for a loaded CI
// machine, short enough that a hang fails rather than stalls.
const timeout = 20 * time.Second

type testCase struct {
	name string
	fn   func(t *testing.T, h Harness, s datastore.Interface)
}

// Run runs the conformance suite against a backend, one subtest per
// behaviour of datastore.Interface and Syncer.
func Run(t *testing.T, h Harness) {
	cases := []testCase{
		{"CreateGetRoundTrip", testCreateGet},
		{"CopiesInAndOut", testCopies},
		{"DefaultsAndValidation", testValidation},
		{"BadInput", testBadInput},
		{"AlreadyExists", testAlreadyExists},
		{"NotFound", testNotFound},
		{"StaleUpdateConflicts", testStaleUpdate},
		{"UnconditionalUpdate", testUnconditionalUpdate},
		{"ConditionalDelete", testConditionalDelete},
		{"NamespacedAndClusterKinds", testNamespaced},
		{"LabelSelector", testLabelSelector},
		{"FieldSelector", testFieldSelector},
		{"WatchFromRevision", testWatchFromRevision},
		{"WatchFromNow", testWatchFromNow},
		{"WatchNamespace", testWatchNamespace},
		{"WatchCompacted", testWatchCompacted},
		{"SlowWatcherDoesNotBlockWriters", testSlowWatcher},
		{"ConcurrentUpdatesOneWins", testConcurrentUpdates},
		{"SyncerInSync", testSyncerInSync},
		{"SyncerResyncAfterCompaction", testSyncerCompaction},
		{"SyncerResyncAfterDisconnect", testSyncerDisconnect},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := h.New(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, h, s)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func rvOf(t *testing.T, r api.Resource) int64 {
	t.Helper()
	rv, err := strconv.ParseInt(r.GetObjectMeta().ResourceVersion, 10, 64)
	if err != nil || rv <= 0 {
		t.Fatalf("%s: resourceVersion %q is not a positive revision", api.KeyOf(r), r.GetObjectMeta().ResourceVersion)
	}
	return rv
}

func mustCreate(t *testing.T, s datastore.Interface, r api.Resource) api.Resource {
	t.Helper()
	out, err := s.Create(ctxFor(t), r)
	if err != nil {
		t.Fatalf("Create(%s): %v", api.KeyOf(r), err)
	}
	return out
}

func mustUpdate(t *testing.T, s datastore.Interface, r api.Resource) api.Resource {
	t.Helper()
	out, err := s.Update(ctxFor(t), r)
	if err != nil {
		t.Fatalf("Update(%s): %v", api.KeyOf(r), err)
	}
	return out
}

func mustGet(t *testing.T, s datastore.Interface, k api.Key) api.Resource {
	t.Helper()
	out, err := s.Get(ctxFor(t), k)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return out
}

func asThing(t *testing.T, r api.Resource) *Thing {
	t.Helper()
	th, ok := r.(*Thing)
	if !ok {
		t.Fatalf("got %T, want *dstest.Thing", r)
	}
	return th
}

func jsonOf(r api.Resource) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func thingKey(name string) api.Key { return api.Key{Kind: ThingKind, Name: name} }

func nsKey(ns, name string) api.Key { return api.Key{Kind: NSThingKind, Namespace: ns, Name: name} }

func wantErr(t *testing.T, err, target error, contains ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %q", err, target)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}

func names(items []api.Resource) string {
	var out []string
	for _, r := range items {
		m := r.GetObjectMeta()
		if m.Namespace != "" {
			out = append(out, m.Namespace+"/"+m.Name)
		} else {
			out = append(out, m.Name)
		}
	}
	return strings.Join(out, ",")
}

func testCreateGet(t *testing.T, h Harness, s datastore.Interface) {
	in := NewThing("a", map[string]string{"app": "web"}, ThingSpec{Node: "host1", Count: 3})
	in.APIVersion = "" // filled in from the kind
	before := time.Now().Add(-2 * time.Second)
	out := asThing(t, mustCreate(t, s, in))
	if out.UID == "" || out.CreationTimestamp == nil || out.Generation != 1 {
		t.Errorf("created metadata = %+v, want UID, creationTimestamp and generation 1 set", out.ObjectMeta)
	}
	if out.CreationTimestamp != nil && (out.CreationTimestamp.Before(before) || out.CreationTimestamp.After(time.Now().Add(time.Second))) {
		t.Errorf("creationTimestamp %v is not now", out.CreationTimestamp)
	}
	rvOf(t, out)
	if out.APIVersion != api.APIVersion || out.Kind != ThingKind {
		t.Errorf("type meta = %+v", out.TypeMeta)
	}
	if out.Spec.Mode != "Auto" {
		t.Errorf("spec.mode = %q, want the default Auto", out.Spec.Mode)
	}
	got := mustGet(t, s, thingKey("a"))
	if jsonOf(got) != jsonOf(out) {
		t.Errorf("Get = %s\nwant  %s", jsonOf(got), jsonOf(out))
	}
	list, err := s.List(ctxFor(t), datastore.ListOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || jsonOf(list.Items[0]) != jsonOf(out) {
		t.Errorf("List = %v", list.Items)
	}
	if list.Revision < rvOf(t, out) {
		t.Errorf("list revision %d is before the create at %d", list.Revision, rvOf(t, out))
	}

	upd := asThing(t, got)
	upd.Spec.Node = "host2"
	upd2 := asThing(t, mustUpdate(t, s, upd))
	if upd2.UID != out.UID || !upd2.CreationTimestamp.Equal(*out.CreationTimestamp) {
		t.Errorf("update changed UID or creationTimestamp: %+v", upd2.ObjectMeta)
	}
	if rvOf(t, upd2) <= rvOf(t, out) || upd2.Generation != 2 {
		t.Errorf("update: resourceVersion %s generation %d, want a later revision and generation 2", upd2.ResourceVersion, upd2.Generation)
	}
	if got := asThing(t, mustGet(t, s, thingKey("a"))); got.Spec.Node != "host2" || got.ResourceVersion != upd2.ResourceVersion {
		t.Errorf("after update Get = %s", jsonOf(got))
	}

	del, err := s.Delete(ctxFor(t), thingKey("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(del) != jsonOf(upd2) {
		t.Errorf("Delete returned %s\nwant %s", jsonOf(del), jsonOf(upd2))
	}
	if _, err := s.Get(ctxFor(t), thingKey("a")); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
}

func testCopies(t *testing.T, h Harness, s datastore.Interface) {
	in := NewThing("a", map[string]string{"app": "web"}, ThingSpec{Tags: []string{"x"}})
	out := asThing(t, mustCreate(t, s, in))
	if in.UID != "" || in.ResourceVersion != "" || in.Spec.Mode != "" {
		t.Errorf("Create changed the caller's object: %s", jsonOf(in))
	}
	// Changing what the caller passed or got back must not reach the store.
	in.Labels["app"] = "changed"
	in.Spec.Tags[0] = "changed"
	out.Labels["app"] = "changed"
	out.Spec.Tags[0] = "changed"
	got := asThing(t, mustGet(t, s, thingKey("a")))
	if got.Labels["app"] != "web" || got.Spec.Tags[0] != "x" {
		t.Errorf("the store shares memory with its callers: %s", jsonOf(got))
	}
	got.Labels["app"] = "changed-again"
	if again := asThing(t, mustGet(t, s, thingKey("a"))); again.Labels["app"] != "web" {
		t.Errorf("Get results share memory: %s", jsonOf(again))
	}
}

func testValidation(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	cases := []struct {
		name   string
		r      api.Resource
		fields []string
	}{
		{"bad mode", NewThing("a", nil, ThingSpec{Mode: "Sometimes"}), []string{"spec.mode"}},
		{"two problems", NewThing("a", nil, ThingSpec{Mode: "Sometimes", Count: -1}), []string{"spec.mode", "spec.count"}},
		{"bad name", NewThing("Not_A_Name", nil, ThingSpec{}), []string{"metadata.name"}},
		{"no name", NewThing("", nil, ThingSpec{}), []string{"metadata.name"}},
		{"bad label", NewThing("a", map[string]string{"app": "not ok!"}, ThingSpec{}), []string{"metadata.labels"}},
		{"namespace on a cluster kind", &Thing{TypeMeta: api.TypeMeta{Kind: ThingKind}, ObjectMeta: api.ObjectMeta{Name: "a", Namespace: "ns"}}, []string{"metadata.namespace"}},
		{"namespaced kind without namespace", NewNSThing("", "a", nil, ThingSpec{}), []string{"metadata.namespace"}},
		{"wrong apiVersion", &Thing{TypeMeta: api.TypeMeta{Kind: ThingKind, APIVersion: "v1"}, ObjectMeta: api.ObjectMeta{Name: "a"}}, []string{"apiVersion"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Create(ctx, c.r)
			var verr *api.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Create = %v, want a *api.ValidationError", err)
			}
			for _, f := range c.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
	list, err := s.List(ctx, datastore.ListOptions{Kind: ThingKind})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("after rejected creates List = %v, %v; want nothing stored", list, err)
	}

	// An invalid update is rejected and leaves the stored value alone.
	good := asThing(t, mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "n1"})))
	bad := *good
	bad.Spec.Mode = "Sometimes"
	bad.Spec.Node = "n2"
	_, err = s.Update(ctx, &bad)
	var verr *api.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("invalid Update = %v, want a *api.ValidationError", err)
	}
	if got := mustGet(t, s, thingKey("a")); jsonOf(got) != jsonOf(good) {
		t.Errorf("rejected update changed the store: %s", jsonOf(got))
	}
}

func testBadInput(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	var nilThing *Thing
	if _, err := s.Create(ctx, nil); err == nil {
		t.Error("Create(nil) succeeded")
	}
	if _, err := s.Create(ctx, nilThing); err == nil {
		t.Error("Create((*Thing)(nil)) succeeded")
	}
	if _, err := s.Update(ctx, nilThing); err == nil {
		t.Error("Update((*Thing)(nil)) succeeded")
	}
	if _, err := s.Create(ctx, &Thing{ObjectMeta: api.ObjectMeta{Name: "a"}}); err == nil {
		t.Error("Create without a kind succeeded")
	}
	for _, k := range []api.Key{
		{Kind: "NoSuchKind", Name: "a"},
		{Kind: ThingKind},
		{Kind: ThingKind, Name: "a/b"},
		{Kind: ThingKind, Namespace: "ns", Name: "a"},
		{Kind: NSThingKind, Name: "a"},
	} {
		if _, err := s.Get(ctx, k); err == nil || errors.Is(err, datastore.ErrNotFound) {
			t.Errorf("Get(%#v) = %v, want an error about the key", k, err)
		}
		if _, err := s.Delete(ctx, k, ""); err == nil || errors.Is(err, datastore.ErrNotFound) {
			t.Errorf("Delete(%#v) = %v, want an error about the key", k, err)
		}
	}
	if _, err := s.List(ctx, datastore.ListOptions{Kind: "NoSuchKind"}); err == nil {
		t.Error("List of an unknown kind succeeded")
	}
	if _, err := s.List(ctx, datastore.ListOptions{}); err == nil {
		t.Error("List without a kind succeeded")
	}
	if _, err := s.Watch(ctx, datastore.WatchOptions{Kind: "NoSuchKind"}); err == nil {
		t.Error("Watch of an unknown kind succeeded")
	}
	r := mustCreate(t, s, NewThing("a", nil, ThingSpec{}))
	r.GetObjectMeta().ResourceVersion = "not-a-number"
	if _, err := s.Update(ctx, r); !errors.Is(err, datastore.ErrConflict) {
		t.Errorf("Update with a garbage resourceVersion = %v, want ErrConflict", err)
	}
	if _, err := s.Delete(ctx, thingKey("a"), "-3"); !errors.Is(err, datastore.ErrConflict) {
		t.Errorf("Delete with a garbage resourceVersion = %v, want ErrConflict", err)
	}
	// generateName gives a fresh name.
	gen := &Thing{TypeMeta: api.TypeMeta{Kind: ThingKind}, ObjectMeta: api.ObjectMeta{GenerateName: "auto-"}}
	g1, err := s.Create(ctx, gen)
	if err != nil {
		t.Fatal(err)
	}
	if g1.GetObjectMeta().Name == "" || !strings.HasPrefix(g1.GetObjectMeta().Name, "auto-") {
		t.Errorf("generateName gave name %q", g1.GetObjectMeta().Name)
	}
}

func testAlreadyExists(t *testing.T, h Harness, s datastore.Interface) {
	first := mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "first"}))
	_, err := s.Create(ctxFor(t), NewThing("a", nil, ThingSpec{Node: "second"}))
	wantErr(t, err, datastore.ErrAlreadyExists, `creating TestThing "a"`)
	if got := mustGet(t, s, thingKey("a")); jsonOf(got) != jsonOf(first) {
		t.Errorf("failed create changed the store: %s", jsonOf(got))
	}
	// The same name in another kind or namespace is another resource.
	mustCreate(t, s, NewNSThing("ns1", "a", nil, ThingSpec{}))
	mustCreate(t, s, NewNSThing("ns2", "a", nil, ThingSpec{}))
	_, err = s.Create(ctxFor(t), NewNSThing("ns2", "a", nil, ThingSpec{}))
	wantErr(t, err, datastore.ErrAlreadyExists, `TestNSThing "ns2/a"`)
}

func testNotFound(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	_, err := s.Get(ctx, thingKey("nope"))
	wantErr(t, err, datastore.ErrNotFound, `getting TestThing "nope"`)
	_, err = s.Update(ctx, NewThing("nope", nil, ThingSpec{}))
	wantErr(t, err, datastore.ErrNotFound, `updating TestThing "nope"`)
	r := NewThing("nope", nil, ThingSpec{})
	r.ResourceVersion = "5"
	_, err = s.Update(ctx, r)
	wantErr(t, err, datastore.ErrNotFound)
	_, err = s.Delete(ctx, thingKey("nope"), "")
	wantErr(t, err, datastore.ErrNotFound, `deleting TestThing "nope"`)
	_, err = s.Delete(ctx, thingKey("nope"), "5")
	wantErr(t, err, datastore.ErrNotFound)
	_, err = s.Get(ctx, nsKey("ns1", "nope"))
	wantErr(t, err, datastore.ErrNotFound, `TestNSThing "ns1/nope"`)
}

func testStaleUpdate(t *testing.T, h Harness, s datastore.Interface) {
	v1 := asThing(t, mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "n1"})))
	edit := *v1
	edit.Spec.Node = "n2"
	v2 := asThing(t, mustUpdate(t, s, &edit))
	stale := *v1
	stale.Spec.Node = "n3"
	_, err := s.Update(ctxFor(t), &stale)
	wantErr(t, err, datastore.ErrConflict, `updating TestThing "a": resource was modified since it was read`)
	if got := mustGet(t, s, thingKey("a")); jsonOf(got) != jsonOf(v2) {
		t.Errorf("conflicting update changed the store:\n got %s\nwant %s", jsonOf(got), jsonOf(v2))
	}
	// The current version still works.
	edit2 := *v2
	edit2.Spec.Node = "n4"
	mustUpdate(t, s, &edit2)
}

func testUnconditionalUpdate(t *testing.T, h Harness, s datastore.Interface) {
	v1 := asThing(t, mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "n1"})))
	// A fresh object with no resourceVersion (as "apply" sends) and a UID
	// of its own: the store keeps its UID and creation time.
	r := NewThing("a", map[string]string{"new": "label"}, ThingSpec{Node: "n2"})
	r.UID = "not-the-real-uid"
	v2 := asThing(t, mustUpdate(t, s, r))
	if v2.UID != v1.UID || !v2.CreationTimestamp.Equal(*v1.CreationTimestamp) {
		t.Errorf("unconditional update: UID %q creation %v, want %q %v", v2.UID, v2.CreationTimestamp, v1.UID, v1.CreationTimestamp)
	}
	if v2.Spec.Node != "n2" || v2.Labels["new"] != "label" || v2.Spec.Mode != "Auto" {
		t.Errorf("unconditional update stored %s", jsonOf(v2))
	}
	if got := mustGet(t, s, thingKey("a")); jsonOf(got) != jsonOf(v2) {
		t.Errorf("Get = %s\nwant %s", jsonOf(got), jsonOf(v2))
	}
}

func testConditionalDelete(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	v1 := mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "n1"}))
	edit := asThing(t, v1)
	edit.Spec.Node = "n2"
	v2 := mustUpdate(t, s, edit)
	_, err := s.Delete(ctx, thingKey("a"), v1.GetObjectMeta().ResourceVersion)
	wantErr(t, err, datastore.ErrConflict, `deleting TestThing "a"`)
	mustGet(t, s, thingKey("a"))
	del, err := s.Delete(ctx, thingKey("a"), v2.GetObjectMeta().ResourceVersion)
	if err != nil {
		t.Fatalf("Delete with the current resourceVersion: %v", err)
	}
	if jsonOf(del) != jsonOf(v2) {
		t.Errorf("Delete returned %s\nwant %s", jsonOf(del), jsonOf(v2))
	}
	_, err = s.Delete(ctx, thingKey("a"), v2.GetObjectMeta().ResourceVersion)
	wantErr(t, err, datastore.ErrNotFound)
	// Namespaced, unconditional.
	mustCreate(t, s, NewNSThing("ns1", "b", nil, ThingSpec{}))
	if _, err := s.Delete(ctx, nsKey("ns1", "b"), ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, nsKey("ns1", "b"))
	wantErr(t, err, datastore.ErrNotFound)
}

func testNamespaced(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	// "a" and "a-b" sort differently as keys ("a-b/" < "a/") than as
	// namespaces; List must use namespace order.
	for _, k := range []struct{ ns, name string }{{"a-b", "x"}, {"a", "y"}, {"a", "x"}, {"ns2", "x"}} {
		mustCreate(t, s, NewNSThing(k.ns, k.name, nil, ThingSpec{}))
	}
	mustCreate(t, s, NewThing("x", nil, ThingSpec{}))
	list := func(kind, ns string) string {
		t.Helper()
		res, err := s.List(ctx, datastore.ListOptions{Kind: kind, Namespace: ns})
		if err != nil {
			t.Fatalf("List(%s, %q): %v", kind, ns, err)
		}
		return names(res.Items)
	}
	if got, want := list(NSThingKind, ""), "a/x,a/y,a-b/x,ns2/x"; got != want {
		t.Errorf("List all namespaces = %s, want %s", got, want)
	}
	if got, want := list(NSThingKind, "a"), "a/x,a/y"; got != want {
		t.Errorf("List namespace a = %s, want %s", got, want)
	}
	if got := list(NSThingKind, "empty"); got != "" {
		t.Errorf("List of an empty namespace = %s", got)
	}
	if got, want := list(ThingKind, ""), "x"; got != want {
		t.Errorf("List cluster kind = %s, want %s", got, want)
	}
	// A namespace given for a cluster-scoped kind is ignored.
	if got, want := list(ThingKind, "a"), "x"; got != want {
		t.Errorf("List cluster kind with a namespace = %s, want %s", got, want)
	}
	if got := mustGet(t, s, nsKey("a-b", "x")); got.GetObjectMeta().Namespace != "a-b" {
		t.Errorf("Get namespaced = %s", jsonOf(got))
	}
	_, err := s.Get(ctx, nsKey("ns3", "x"))
	wantErr(t, err, datastore.ErrNotFound)
}

func testLabelSelector(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	mustCreate(t, s, NewThing("web1", map[string]string{"app": "web", "tier": "front"}, ThingSpec{}))
	mustCreate(t, s, NewThing("web2", map[string]string{"app": "web"}, ThingSpec{}))
	mustCreate(t, s, NewThing("db1", map[string]string{"app": "db", "tier": "back"}, ThingSpec{}))
	mustCreate(t, s, NewThing("bare", nil, ThingSpec{}))
	mustCreate(t, s, NewNSThing("ns1", "web3", map[string]string{"app": "web"}, ThingSpec{}))
	cases := []struct{ sel, want string }{
		{"", "bare,db1,web1,web2"},
		{"all()", "bare,db1,web1,web2"},
		{`app == "web"`, "web1,web2"},
		{`app != "web"`, "bare,db1"},
		{`has(tier)`, "db1,web1"},
		{`has(tier) && app != "db"`, "web1"},
		{`app in {"db", "web"} && !has(tier)`, "web2"},
		{`app starts with "w"`, "web1,web2"},
	}
	for _, c := range cases {
		res, err := s.List(ctx, datastore.ListOptions{Kind: ThingKind, LabelSelector: c.sel})
		if err != nil {
			t.Errorf("List selector %q: %v", c.sel, err)
			continue
		}
		if got := names(res.Items); got != c.want {
			t.Errorf("List selector %q = %s, want %s", c.sel, got, c.want)
		}
	}
	res, err := s.List(ctx, datastore.ListOptions{Kind: NSThingKind, LabelSelector: `app == "web"`})
	if err != nil || names(res.Items) != "ns1/web3" {
		t.Errorf("namespaced label selector = %v, %v", res, err)
	}
	if _, err := s.List(ctx, datastore.ListOptions{Kind: ThingKind, LabelSelector: `app == `}); err == nil {
		t.Error("List with a broken selector succeeded")
	}
}

func testFieldSelector(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	mustCreate(t, s, NewThing("a", map[string]string{"projectcalico.org/name": "x"}, ThingSpec{Node: "host1", Count: 2}))
	mustCreate(t, s, NewThing("b", map[string]string{"app": "web"}, ThingSpec{Node: "host2", Mode: "Never"}))
	mustCreate(t, s, NewThing("c", map[string]string{"app": "web"}, ThingSpec{}))
	mustCreate(t, s, NewNSThing("kube-system", "d", nil, ThingSpec{Node: "host1"}))
	mustCreate(t, s, NewNSThing("default", "e", nil, ThingSpec{Node: "host1"}))
	cases := []struct{ kind, label, field, want string }{
		{ThingKind, "", "spec.node=host1", "a"},
		{ThingKind, "", "spec.node==host1", "a"},
		{ThingKind, "", "spec.node!=host1", "b,c"},
		{ThingKind, "", "spec.node=", "c"},
		{ThingKind, "", "spec.mode=Auto", "a,c"},
		{ThingKind, "", "spec.count=2", "a"},
		{ThingKind, "", "metadata.name=b", "b"},
		{ThingKind, "", "metadata.labels.projectcalico.org/name=x", "a"},
		{ThingKind, "", "spec.node!=host1, spec.mode=Auto", "c"},
		{ThingKind, `app == "web"`, "spec.node=host2", "b"},
		{NSThingKind, "", "spec.node=host1,metadata.namespace!=kube-system", "default/e"},
	}
	for _, c := range cases {
		res, err := s.List(ctx, datastore.ListOptions{Kind: c.kind, LabelSelector: c.label, FieldSelector: c.field})
		if err != nil {
			t.Errorf("List %s field selector %q: %v", c.kind, c.field, err)
			continue
		}
		if got := names(res.Items); got != c.want {
			t.Errorf("List %s label %q field %q = %s, want %s", c.kind, c.label, c.field, got, c.want)
		}
	}
	for _, bad := range []string{"spec.node", "=x", "spec..node=x", "a=b,,c=d"} {
		if _, err := s.List(ctx, datastore.ListOptions{Kind: ThingKind, FieldSelector: bad}); err == nil {
			t.Errorf("List with field selector %q succeeded", bad)
		}
	}
}

// nextEvent waits for one event.
func nextEvent(t *testing.T, w datastore.Watcher) datastore.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("watcher closed while an event was expected")
		}
		return ev
	case <-time.After(timeout):
		t.Fatal("no watch event within the timeout")
	}
	return datastore.Event{}
}

// noEvent checks that nothing arrives for a short while.
func noEvent(t *testing.T, w datastore.Watcher) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Fatalf("unexpected event %v %s", ev.Type, describe(ev))
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func describe(ev datastore.Event) string {
	if ev.Err != nil {
		return ev.Err.Error()
	}
	if ev.Object == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s rv=%s rev=%d", api.KeyOf(ev.Object), ev.Object.GetObjectMeta().ResourceVersion, ev.Revision)
}

func expectEvent(t *testing.T, w datastore.Watcher, typ datastore.EventType, name string, rev int64, prevRV int64) datastore.Event {
	t.Helper()
	ev := nextEvent(t, w)
	if ev.Type != typ || ev.Object == nil || ev.Object.GetObjectMeta().Name != name || ev.Revision != rev {
		t.Fatalf("event = %v %s, want %v %s at revision %d", ev.Type, describe(ev), typ, name, rev)
	}
	switch {
	case prevRV == 0 && ev.Previous != nil:
		t.Errorf("%v %s: unexpected Previous %s", typ, name, jsonOf(ev.Previous))
	case prevRV != 0 && ev.Previous == nil:
		t.Errorf("%v %s: no Previous, want the version at %d", typ, name, prevRV)
	case prevRV != 0 && ev.Previous.GetObjectMeta().ResourceVersion != strconv.FormatInt(prevRV, 10):
		t.Errorf("%v %s: Previous at %s, want %d", typ, name, ev.Previous.GetObjectMeta().ResourceVersion, prevRV)
	}
	return ev
}

func testWatchFromRevision(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	a1 := mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "n1"}))
	r1 := rvOf(t, a1)
	edit := asThing(t, a1)
	edit.Spec.Node = "n2"
	a2 := mustUpdate(t, s, edit)
	r2 := rvOf(t, a2)
	if _, err := s.Delete(ctx, thingKey("a"), ""); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, NewNSThing("ns1", "other-kind", nil, ThingSpec{}))
	b := mustCreate(t, s, NewThing("b", nil, ThingSpec{}))
	r4 := rvOf(t, b)
	list, err := s.List(ctx, datastore.ListOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}

	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind, Revision: r1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	prevRV := r1
	if h.WatchWithoutPrevious {
		prevRV = 0 // and expectEvent checks that there is none
	}
	ev := expectEvent(t, w, datastore.Modified, "a", r2, prevRV)
	if asThing(t, ev.Object).Spec.Node != "n2" || (!h.WatchWithoutPrevious && asThing(t, ev.Previous).Spec.Node != "n1") {
		t.Errorf("Modified: object %s previous %s", jsonOf(ev.Object), jsonOf(ev.Previous))
	}
	del := nextEvent(t, w)
	if del.Type != datastore.Deleted || del.Object == nil || del.Object.GetObjectMeta().Name != "a" || del.Revision <= r2 || del.Revision >= r4 {
		t.Fatalf("event = %v %s, want Deleted a between %d and %d", del.Type, describe(del), r2, r4)
	}
	want := a2
	if h.WatchWithoutPrevious {
		// The last stored state, at the delete's revision.
		last := *asThing(t, a2)
		last.ResourceVersion = strconv.FormatInt(del.Revision, 10)
		want = &last
	}
	if jsonOf(del.Object) != jsonOf(want) {
		t.Errorf("Deleted object = %s\nwant the last stored %s", jsonOf(del.Object), jsonOf(want))
	}
	expectEvent(t, w, datastore.Added, "b", r4, 0)
	noEvent(t, w)

	// Changes made while watching arrive too, and a watch from the list's
	// revision starts with them.
	w2, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind, Revision: list.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	c := mustCreate(t, s, NewThing("c", nil, ThingSpec{}))
	expectEvent(t, w, datastore.Added, "c", rvOf(t, c), 0)
	expectEvent(t, w2, datastore.Added, "c", rvOf(t, c), 0)
	noEvent(t, w2)

	w.Stop()
	w.Stop() // idempotent
	for range w.Events() {
	}
}

func testWatchFromNow(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	mustCreate(t, s, NewThing("old", nil, ThingSpec{}))
	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	noEvent(t, w)
	n := mustCreate(t, s, NewThing("new", nil, ThingSpec{}))
	expectEvent(t, w, datastore.Added, "new", rvOf(t, n), 0)

	// Cancelling the context ends the watch.
	wctx, cancel := context.WithCancel(ctx)
	w2, err := s.Watch(wctx, datastore.WatchOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-w2.Events():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watcher not closed after its context was cancelled")
		}
	}
}

func testWatchNamespace(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	start := mustCreate(t, s, NewThing("start", nil, ThingSpec{}))
	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: NSThingKind, Namespace: "ns1", Revision: rvOf(t, start)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, NewNSThing("ns2", "x", nil, ThingSpec{}))
	mustCreate(t, s, NewNSThing("ns1x", "x", nil, ThingSpec{}))
	mustCreate(t, s, NewThing("x", nil, ThingSpec{}))
	in := mustCreate(t, s, NewNSThing("ns1", "x", nil, ThingSpec{}))
	ev := expectEvent(t, w, datastore.Added, "x", rvOf(t, in), 0)
	if ev.Object.GetObjectMeta().Namespace != "ns1" {
		t.Errorf("event from namespace %q", ev.Object.GetObjectMeta().Namespace)
	}
	noEvent(t, w)
}

func testWatchCompacted(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	a := mustCreate(t, s, NewThing("a", nil, ThingSpec{Node: "n1"}))
	r1 := rvOf(t, a)
	for _, n := range []string{"n2", "n3"} {
		th := asThing(t, a)
		th.Spec.Node = n
		a = mustUpdate(t, s, th)
	}
	h.Compact(t, s, rvOf(t, a))
	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind, Revision: r1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	if ev.Type != datastore.Error || !errors.Is(ev.Err, datastore.ErrCompacted) {
		t.Fatalf("event = %v %s, want an Error wrapping ErrCompacted", ev.Type, describe(ev))
	}
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Fatalf("event after the error: %v %s", ev.Type, describe(ev))
		}
	case <-time.After(timeout):
		t.Fatal("watcher not closed after its error")
	}
	// Listing still works, and watching from its revision does too.
	list, err := s.List(ctx, datastore.ListOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind, Revision: list.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	b := mustCreate(t, s, NewThing("b", nil, ThingSpec{}))
	expectEvent(t, w2, datastore.Added, "b", rvOf(t, b), 0)
}

func testSlowWatcher(t *testing.T, h Harness, s datastore.Interface) {
	ctx := ctxFor(t)
	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Nobody reads while these are written: the writer must not wait.
	const n = 300
	for i := range n {
		mustCreate(t, s, NewThing(fmt.Sprintf("t%03d", i), nil, ThingSpec{}))
	}
	for i := range n {
		ev := nextEvent(t, w)
		if want := fmt.Sprintf("t%03d", i); ev.Type != datastore.Added || ev.Object.GetObjectMeta().Name != want {
			t.Fatalf("event %d = %v %s, want Added %s", i, ev.Type, describe(ev), want)
		}
	}
	// A watcher that is never read and then stopped releases everything.
	w2, err := s.Watch(ctx, datastore.WatchOptions{Kind: ThingKind})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustCreate(t, s, NewThing(fmt.Sprintf("u%03d", i), nil, ThingSpec{}))
	}
	done := make(chan struct{})
	go func() { w2.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatal("Stop of an unread watcher hangs")
	}
}

func testConcurrentUpdates(t *testing.T, h Harness, s datastore.Interface) {
	base := asThing(t, mustCreate(t, s, NewThing("a", nil, ThingSpec{})))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := *base
			r.Spec.Node = fmt.Sprintf("writer%d", i)
			_, errs[i] = s.Update(ctxFor(t), &r)
		}()
	}
	wg.Wait()
	winners := 0
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = fmt.Sprintf("writer%d", i)
		case !errors.Is(err, datastore.ErrConflict):
			t.Errorf("writer %d: %v, want success or ErrConflict", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d updates with the same resourceVersion succeeded, want exactly 1", winners)
	}
	if got := asThing(t, mustGet(t, s, thingKey("a"))); got.Spec.Node != winner {
		t.Errorf("stored node %q, want the winner's %q", got.Spec.Node, winner)
	}

	// Unconditional updates racing all succeed, one after another.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Update(ctxFor(t), NewThing("a", nil, ThingSpec{Count: i}))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("unconditional writer %d: %v", i, err)
		}
	}
	if got := asThing(t, mustGet(t, s, thingKey("a"))); got.UID != base.UID || got.Generation != base.Generation+1+n {
		t.Errorf("after %d unconditional updates: uid %q generation %d, want %q %d", n, got.UID, got.Generation, base.UID, base.Generation+1+n)
	}
}
