package kubernetes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
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

// page is one list response: its revision and continue token, read at
// once so that the next page can be asked for, and its items, decoded by
// items (the heavier part, done while the next page is on its way).
type page struct {
	rev   int64  // the revision of the list
	cont  string // the continue token; "" on the last page
	items func() ([]decoded, error)
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
	items := func() ([]decoded, error) {
		out := make([]decoded, len(l.Items))
		for i, item := range l.Items {
			d := &out[i]
			d.obj, d.rev, d.err = f.object(item)
		}
		return out, nil
	}
	return page{rev: rev, cont: l.Metadata.Continue, items: items}, nil
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
	d   *deriver
	log *slog.Logger
}

func (f protoFormat) page(raw []byte) (page, error) {
	rv, cont, err := protoListMeta(raw)
	if err != nil {
		return page{}, fmt.Errorf("reading the API server's list of %s: %w", f.d.from, err)
	}
	rev, err := listRevision(rv)
	if err != nil {
		return page{}, err
	}
	items := func() ([]decoded, error) {
		if f.d.slim != nil {
			return f.slimItems(raw)
		}
		list, _, err := protoObjects.Decode(raw, nil, f.d.newList())
		if err != nil {
			return nil, fmt.Errorf("decoding the API server's list of %s: %w", f.d.from, err)
		}
		out := make([]decoded, 0, meta.LenList(list))
		err = meta.EachListItem(list, func(o runtime.Object) error {
			var d decoded
			d.obj, d.rev, d.err = f.d.derive(f.log, o)
			out = append(out, d)
			return nil
		})
		return out, err
	}
	return page{rev: rev, cont: cont, items: items}, nil
}

// protoListMeta reads a protobuf list's resourceVersion and continue
// token without decoding its items: the list's ListMeta is its field 1
// (every list type of the API has it there), resourceVersion and continue
// fields 2 and 3 of that (k8s.io/apimachinery's generated.proto).
func protoListMeta(raw []byte) (rv, cont string, err error) {
	list, err := protoPayload(raw)
	if err != nil {
		return "", "", fmt.Errorf("the envelope: %w", err)
	}
	var m metav1.ListMeta
	err = protoFields(list, func(num protowire.Number, v []byte, _ uint64) error {
		if num == 1 {
			return m.Unmarshal(v)
		}
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("the list's metadata: %w", err)
	}
	return m.ResourceVersion, m.Continue, nil
}

// slimItems decodes a list's items (its field 2) with the deriver's slim
// decoder.
func (f protoFormat) slimItems(raw []byte) ([]decoded, error) {
	list, err := protoPayload(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding the API server's list of %s: %w", f.d.from, err)
	}
	var out []decoded
	err = protoFields(list, func(num protowire.Number, v []byte, _ uint64) error {
		if num != 2 {
			return nil
		}
		var d decoded
		o, err := f.d.slim(v)
		if err != nil {
			d.err = fmt.Errorf("decoding one of %s: %w", f.d.from, err)
		} else {
			d.obj, d.rev, d.err = f.d.derive(f.log, o)
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding the API server's list of %s: %w", f.d.from, err)
	}
	return out, nil
}

func (f protoFormat) events(body io.Reader) eventReader {
	frames := protobuf.LengthDelimitedFramer.NewFrameReader(io.NopCloser(body))
	return &protoEventReader{f: f, dec: streaming.NewDecoder(frames, protoEvents)}
}

// object decodes the object of a watch event: an error event's Status
// whole, a resource's with the deriver's slim decoder when it has one.
func (f protoFormat) object(typ string, raw []byte) (runtime.Object, error) {
	if f.d.slim == nil || typ == "ERROR" {
		o, _, err := protoObjects.Decode(raw, nil, nil)
		return o, err
	}
	msg, err := protoPayload(raw)
	if err != nil {
		return nil, err
	}
	return f.d.slim(msg)
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
	obj, err := r.f.object(we.Type, we.Object.Raw)
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
		ev.obj, ev.rev, ev.err = r.f.d.derive(r.f.log, obj)
	}
	return ev, nil
}

// protoFields calls f for each field of a protobuf message: v is the
// bytes of a length-delimited field, n the value of a varint; fields of
// other wire types are skipped.
func protoFields(msg []byte, f func(num protowire.Number, v []byte, n uint64) error) error {
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
		var err error
		switch typ {
		case protowire.BytesType:
			var v []byte
			v, l = protowire.ConsumeBytes(msg)
			if l >= 0 {
				err = f(num, v, 0)
			}
		case protowire.VarintType:
			var n uint64
			n, l = protowire.ConsumeVarint(msg)
			if l >= 0 {
				err = f(num, nil, n)
			}
		default:
			l = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		if err != nil {
			return err
		}
		msg = msg[l:]
	}
	return nil
}

// protoPayload is the object's own message inside the protobuf envelope
// the API server sends: the "k8s\x00" prefix, then a runtime.Unknown
// whose field 2 is the object.
func protoPayload(raw []byte) ([]byte, error) {
	const prefix = "k8s\x00"
	if len(raw) < len(prefix) || string(raw[:len(prefix)]) != prefix {
		return nil, errors.New("not a protobuf message")
	}
	var msg []byte
	err := protoFields(raw[len(prefix):], func(num protowire.Number, v []byte, _ uint64) error {
		if num == 2 {
			msg = v
		}
		return nil
	})
	return msg, err
}
