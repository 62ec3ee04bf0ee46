package kubernetes

import (
	"log/slog"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// encodePods is a PodList as the API server sends it in protobuf.
func encodePods(t *testing.T, lm metav1.ListMeta, names ...string) []byte {
	t.Helper()
	l := &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, ListMeta: lm}
	for i, n := range names {
		ev := podEvent("ADDED", n, 100+i)
		l.Items = append(l.Items, *ev.Object.(*corev1.Pod))
	}
	raw, err := runtime.Encode(protoObjects, l)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestProtoPage: a protobuf list's revision and continue token are read
// without its items, which decode on demand into the resources they
// stand for; a damaged answer is an error, never a panic.
func TestProtoPage(t *testing.T) {
	full := encodePods(t, metav1.ListMeta{ResourceVersion: "42", Continue: "next-page"}, "a", "b")
	cases := []struct {
		name      string
		raw       []byte
		rev       int64
		cont      string
		endpoints []string
		err       bool
	}{
		{name: "a page with more to come", raw: full, rev: 42, cont: "next-page", endpoints: []string{endpointOf("a"), endpointOf("b")}},
		{name: "the last page, empty", raw: encodePods(t, metav1.ListMeta{ResourceVersion: "7"}), rev: 7},
		{name: "no revision", raw: encodePods(t, metav1.ListMeta{}), err: true},
		{name: "JSON", raw: []byte(`{"kind":"PodList","metadata":{"resourceVersion":"1"}}`), err: true},
		{name: "cut short", raw: full[:len(full)/3], err: true},
		{name: "the prefix alone", raw: []byte("k8s\x00"), err: true},
	}
	f := podEndpoints.format(slog.New(slog.DiscardHandler)).(protoFormat)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := f.page(c.raw)
			if c.err {
				if err == nil {
					t.Fatalf("page: no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.rev != c.rev || p.cont != c.cont {
				t.Errorf("revision %d, continue %q; want %d, %q", p.rev, p.cont, c.rev, c.cont)
			}
			items, err := p.items()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range items {
				if d.err != nil || d.obj == nil {
					t.Fatalf("item: %v, %v", d.obj, d.err)
				}
				got = append(got, d.obj.GetObjectMeta().Name)
			}
			if !slices.Equal(got, c.endpoints) {
				t.Errorf("items %v, want %v", got, c.endpoints)
			}
		})
	}
}
