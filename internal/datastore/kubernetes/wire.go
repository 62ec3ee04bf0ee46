package kubernetes

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"

	"github.com/servalnet/serval/internal/api"
)

// What travels between the store and the API server. Custom resources
// (Serval's kinds, ClusterNetworkPolicies) have only JSON. Kubernetes' own
// resources that kinds are derived from (Pods, Namespaces, ...) are read
// in protobuf: at 10,000 pods and more the initial list is most of an
// agent's cold start, and protobuf costs both ends a fraction of JSON's
// CPU (no text to scan, each object decoded once).

// builtinScheme knows the built-in types the derivers read, and the
// Status and WatchEvent envelopes around them.
var builtinScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("registering Kubernetes' built-in types: %v", err)) // a programming error, at init
		}
	}
	return s
}()

var (
	// protoObjects decodes one object (a GET's answer, a list, an object
	// inside a watch event): the "k8s\x00" prefix and a runtime.Unknown
	// envelope around the object's own message.
	protoObjects = protobuf.NewSerializer(builtinScheme, builtinScheme)
	// protoEvents decodes the frames of a watch stream: WatchEvents with
	// no envelope, each after its length.
	protoEvents = protobuf.NewRawSerializer(builtinScheme, builtinScheme)
)

// decoded is one object read from the API server: the resource it stands
// for (nil when none) and the revision it was written at, or why it could
// not be read.
type decoded struct {
	obj api.Resource
	rev int64
	err error
}

// page is one list response.
type page struct {
	rev   int64  // the revision of the list
	cont  string // the continue token; "" on the last page
	items []decoded
}

// event is one event of a watch stream.
type event struct {
	typ string // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
	// ADDED, MODIFIED, DELETED: the object; BOOKMARK: its revision (err
	// set when it had none).
	decoded
	status *metav1.Status // ERROR
}

// A format reads the list responses and watch streams of one resource.
type format interface {
	page(raw []byte) (page, error)
	events(body io.Reader) eventReader
}

// eventReader reads a watch stream one event at a time; io.EOF when the
// server ended it.
type eventReader interface {
	next() (event, error)
}

// listRevision parses a list's resourceVersion.
func listRevision(rv string) (int64, error) {
	rev, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || rev <= 0 {
		return 0, fmt.Errorf("the list's resourceVersion %q is not a revision", rv)
	}
	return rev, nil
}

// A jsonFormat reads a resource in JSON; object decodes one object of
// it.
type jsonFormat struct {
	object func(raw []byte) (api.Resource, int64, error)
}

func (f jsonFormat) page(raw []byte) (page, error) {
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
			Continue        string `json:"continue"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return page{}, fmt.Errorf("decoding the API server's answer: %w", err)
	}
	rev, err := listRevision(l.Metadata.ResourceVersion)
	if err != nil {
		return page{}, err
	}
	p := page{rev: rev, cont: l.Metadata.Continue, items: make([]decoded, len(l.Items))}
	for i, item := range l.Items {
		d := &p.items[i]
		d.obj, d.rev, d.err = f.object(item)
	}
	return p, nil
}

func (f jsonFormat) events(body io.Reader) eventReader {
	return &jsonEvents{f: f, dec: json.NewDecoder(body)}
}

type jsonEvents struct {
	f   jsonFormat
	dec *json.Decoder
}

func (r *jsonEvents) next() (event, error) {
	var we struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if err := r.dec.Decode(&we); err != nil {
		return event{}, err
	}
	ev := event{typ: we.Type}
	switch we.Type {
	case "BOOKMARK":
		var b struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if ev.err = json.Unmarshal(we.Object, &b); ev.err == nil {
			ev.rev, ev.err = listRevision(b.Metadata.ResourceVersion)
		}
	case "ERROR":
		var s metav1.Status
		if err := json.Unmarshal(we.Object, &s); err != nil {
			return event{}, fmt.Errorf("undecodable error event: %w", err)
		}
		ev.status = &s
	default:
		ev.obj, ev.rev, ev.err = r.f.object(we.Object)
	}
	return ev, nil
}

// A protoFormat reads one of Kubernetes' own resources in protobuf
// through its deriver.
type protoFormat struct {
	d      *deriver
	derive func(runtime.Object) (api.Resource, int64, error)
}

func (f protoFormat) page(raw []byte) (page, error) {
	list, _, err := protoObjects.Decode(raw, nil, f.d.newList())
	if err != nil {
		return page{}, fmt.Errorf("decoding the API server's list of %s: %w", f.d.from, err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return page{}, fmt.Errorf("reading the API server's list of %s: %w", f.d.from, err)
	}
	rev, err := listRevision(lm.GetResourceVersion())
	if err != nil {
		return page{}, err
	}
	p := page{rev: rev, cont: lm.GetContinue(), items: make([]decoded, 0, meta.LenList(list))}
	err = meta.EachListItem(list, func(o runtime.Object) error {
		var d decoded
		d.obj, d.rev, d.err = f.derive(o)
		p.items = append(p.items, d)
		return nil
	})
	return p, err
}

func (f protoFormat) events(body io.Reader) eventReader {
	frames := protobuf.LengthDelimitedFramer.NewFrameReader(io.NopCloser(body))
	return &protoEventReader{f: f, dec: streaming.NewDecoder(frames, protoEvents)}
}

type protoEventReader struct {
	f   protoFormat
	dec streaming.Decoder
}

func (r *protoEventReader) next() (event, error) {
	var we metav1.WatchEvent
	if _, _, err := r.dec.Decode(nil, &we); err != nil {
		return event{}, err
	}
	ev := event{typ: we.Type}
	// One object that cannot be decoded is skipped, like a JSON one:
	// the stream's framing is intact.
	obj, _, err := protoObjects.Decode(we.Object.Raw, nil, nil)
	switch {
	case err != nil && we.Type == "ERROR":
		return event{}, fmt.Errorf("undecodable error event: %w", err)
	case err != nil:
		ev.err = fmt.Errorf("decoding one of %s: %w", r.f.d.from, err)
	case we.Type == "BOOKMARK":
		m, err := meta.Accessor(obj)
		if err != nil {
			ev.err = fmt.Errorf("a bookmark of %s: %w", r.f.d.from, err)
		} else {
			ev.rev, ev.err = listRevision(m.GetResourceVersion())
		}
	case we.Type == "ERROR":
		s, ok := obj.(*metav1.Status)
		if !ok {
			return event{}, fmt.Errorf("an error event of %s holds a %T, not a Status", r.f.d.from, obj)
		}
		ev.status = s
	default:
		ev.obj, ev.rev, ev.err = r.f.derive(obj)
	}
	return ev, nil
}
