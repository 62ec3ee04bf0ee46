package crd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore/dstest"
	"github.com/servalnet/serval/internal/kubetest"
)

// The tests of this file run a real kube-apiserver (internal/kubetest):
// run them under `flock /tmp/serval-root-tests.lock`.

func TestMain(m *testing.M) { kubetest.Main(m) }

// installCRDs applies manifests/crds and the CRDs of the conformance
// suite's test kinds, and waits until the API server serves them all.
func installCRDs(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	c.MustKubectl(t, "apply", "-f", manifestDir)
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	var test bytes.Buffer
	for _, crd := range all {
		if _, isFile := filesOfRealKinds(t)[crd.FileName()]; isFile {
			continue
		}
		b, err := crd.YAML()
		if err != nil {
			t.Fatal(err)
		}
		test.WriteString("---\n")
		test.Write(b)
	}
	if out, err := c.KubectlStdin(&test, "apply", "-f", "-"); err != nil {
		t.Fatalf("installing the test kinds' CRDs: %v\n%s", err, out)
	}
	c.MustKubectl(t, "wait", "--for=condition=Established", "--timeout=120s", "crd", "-l", "app.kubernetes.io/part-of=serval")
	out := c.MustKubectl(t, "get", "crd", "-l", "app.kubernetes.io/part-of=serval", "-o", "name")
	if got := len(strings.Fields(out)); got != len(all) {
		t.Fatalf("%d CRDs installed, want %d:\n%s", got, len(all), out)
	}
}

func filesOfRealKinds(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := Files(realKinds())
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// normalise turns a JSON-able value into what encoding/json decodes it as
// (float64 numbers, map[string]any objects), so that values from a file and
// from the API server compare equal when they are.
func normalise(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fromServer strips what the API server and kubectl add to an object's
// metadata and that api.ObjectMeta has no field for.
func fromServer(obj *unstructured.Unstructured) map[string]any {
	o := obj.DeepCopy().Object
	md, _ := o["metadata"].(map[string]any)
	delete(md, "managedFields")
	if ann, ok := md["annotations"].(map[string]any); ok {
		delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
		if len(ann) == 0 {
			delete(md, "annotations")
		}
	}
	return o
}

// TestKubectlApplyManifests installs the CRDs in a real kube-apiserver and
// applies every valid manifest of internal/api's tests with kubectl, one
// document at a time: each is accepted, and what the API server returns is
// the document as written (nothing pruned, status written through the
// status subresource), decodes strictly with api.Decode and, after
// defaults, equals the document after defaults.
func TestKubectlApplyManifests(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../api/testdata/valid/*.yaml")
	namespaces := map[string]bool{"default": true}
	n := 0
	for _, file := range files {
		for i, doc := range rawDocuments(t, file) {
			n++
			t.Run(fmt.Sprintf("%s#%d", filepath.Base(file), i+1), func(t *testing.T) {
				kind, _ := doc["kind"].(string)
				info, ok := api.LookupKind(kind)
				if !ok {
					t.Fatalf("kind %q", kind)
				}
				md := doc["metadata"].(map[string]any)
				ns, _ := md["namespace"].(string)
				if info.Namespaced && ns == "" {
					ns = "default"
				}
				if ns != "" && !namespaces[ns] {
					if _, err := c.Kubectl("create", "namespace", ns); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
						t.Fatal(err)
					}
					namespaces[ns] = true
				}
				if name, _ := md["name"].(string); name == "" {
					// servalctl derives a WorkloadEndpoint's name from its
					// spec (as calicoctl does); the API server needs it
					// written. Apply it with the name Serval derives.
					js, _ := json.Marshal(doc)
					if _, err := c.KubectlStdin(bytes.NewReader(js), "apply", "-f", "-"); err == nil {
						t.Fatal("kubectl apply took a resource without a name")
					}
					loaded, err := api.Load(file, js, nil)
					if err != nil {
						t.Fatal(err)
					}
					md["name"] = loaded[0].Resource.GetObjectMeta().Name
					t.Logf("no name: applied as %q, the name Serval derives", md["name"])
				}
				applyAndCheck(t, c, dyn, info, doc, ns)
			})
		}
	}
	if n < 40 {
		t.Errorf("only %d documents applied", n)
	}
}

func applyAndCheck(t *testing.T, c *kubetest.Cluster, dyn dynamic.Interface, info api.KindInfo, doc map[string]any, ns string) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	name := doc["metadata"].(map[string]any)["name"].(string)
	res := dyn.Resource(GVR(info))
	var ri dynamic.ResourceInterface = res
	if info.Namespaced {
		ri = res.Namespace(ns)
	}
	js, _ := json.Marshal(doc)
	if out, err := c.KubectlStdin(bytes.NewReader(js), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply refused a valid manifest: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ri.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting %s %s: %v", info.Kind, name, err)
		}
	})
	if status, ok := doc["status"].(map[string]any); ok {
		// With the status subresource, a create leaves the status out;
		// it is written on its own, as the kubernetes backend does.
		obj, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, has := obj.Object["status"]; has {
			t.Errorf("the status was stored by a create, not through the status subresource")
		}
		obj.Object["status"] = status
		if _, err := ri.UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("writing the status: %v", err)
		}
	}
	obj, err := ri.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := fromServer(obj)

	// Nothing pruned, nothing changed: spec and status as written.
	for _, part := range []string{"spec", "status"} {
		if w, g := normalise(t, doc[part]), normalise(t, got[part]); !reflect.DeepEqual(w, g) {
			wj, _ := json.Marshal(w)
			gj, _ := json.Marshal(g)
			t.Errorf("%s changed by the API server:\nwrote %s\nread  %s", part, wj, gj)
		}
	}
	gotMD := got["metadata"].(map[string]any)
	wantMD := doc["metadata"].(map[string]any)
	for _, f := range []string{"labels", "annotations"} {
		if w, g := normalise(t, wantMD[f]), normalise(t, gotMD[f]); !reflect.DeepEqual(w, g) {
			t.Errorf("metadata.%s: wrote %v, read %v", f, w, g)
		}
	}

	// What the API server returns is a resource Serval reads, equal after
	// defaults to the document after defaults.
	gj, _ := json.Marshal(got)
	back, err := api.Load("api server", gj, nil)
	if err != nil {
		t.Fatalf("the object read back does not load: %v\n%s", err, gj)
	}
	wj, _ := json.Marshal(doc)
	want, err := api.Load("manifest", wj, func(r api.Resource) error {
		r.GetObjectMeta().Namespace = ns
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b := back[0].Resource
	if b.GetObjectMeta().UID == "" || b.GetObjectMeta().ResourceVersion == "" {
		t.Errorf("uid %q, resourceVersion %q: the server's metadata did not decode", b.GetObjectMeta().UID, b.GetObjectMeta().ResourceVersion)
	}
	m := b.GetObjectMeta()
	m.UID, m.ResourceVersion, m.Generation, m.CreationTimestamp = "", "", 0, nil
	bj, _ := json.Marshal(b)
	wantJ, _ := json.Marshal(want[0].Resource)
	if !bytes.Equal(bj, wantJ) {
		t.Errorf("read back after defaults:\n%s\nwant\n%s", bj, wantJ)
	}
}

// TestKubectlRefusesInvalid applies the invalid manifests of internal/api's
// tests: each one the schema judges invalid (structural_test.go's
// validator), and each one breaking a CEL rule, is refused by the API
// server. The others are Serval's to refuse; they are counted, and removed
// again when the API server took them.
func TestKubectlRefusesInvalid(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c)
	for _, ns := range []string{"prod", "production", "staging"} {
		if _, err := c.Kubectl("create", "namespace", ns); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
			t.Fatal(err)
		}
	}
	type doc struct {
		name    string
		content map[string]any
		want    string // part of kubectl's error; "" when any refusal will do
	}
	var mustRefuse, others []doc
	files, _ := filepath.Glob("../api/testdata/invalid/*.yaml")
	for _, file := range files {
		for i, d := range rawDocuments(t, file) {
			kind, _ := d["kind"].(string)
			info, ok := api.LookupKind(kind)
			dd := doc{name: fmt.Sprintf("%s#%d", filepath.Base(file), i+1), content: d}
			if ok && info.Kind == kind && len(validateValue(d, schemaOf(t, kind), "")) > 0 {
				mustRefuse = append(mustRefuse, dd)
			} else {
				others = append(others, dd)
			}
		}
	}
	// The CEL rules, each broken alone.
	mustRefuse = append(mustRefuse,
		doc{"cel/ippool-both-encaps", map[string]any{"apiVersion": api.APIVersion, "kind": "IPPool",
			"metadata": map[string]any{"name": "cel-both-encaps"},
			"spec":     map[string]any{"cidr": "10.9.0.0/16", "ipipMode": "CrossSubnet", "vxlanMode": "Always"}},
			"a pool uses at most one encapsulation"},
		doc{"cel/felix-route-tables", map[string]any{"apiVersion": api.APIVersion, "kind": "FelixConfiguration",
			"metadata": map[string]any{"name": "cel-route-tables"},
			"spec": map[string]any{"routeTableRange": map[string]any{"min": 1, "max": 250},
				"routeTableRanges": []any{map[string]any{"min": 1, "max": 250}}}},
			"routeTableRange must not be set together with routeTableRanges"},
		doc{"cel/bgppeer-node-and-selector", map[string]any{"apiVersion": api.APIVersion, "kind": "BGPPeer",
			"metadata": map[string]any{"name": "cel-node-sel"},
			"spec":     map[string]any{"node": "a", "nodeSelector": "all()", "peerIP": "192.0.2.1", "asNumber": 64512}},
			"node must not be set together with nodeSelector"},
		doc{"cel/bgppeer-ip-and-selector", map[string]any{"apiVersion": api.APIVersion, "kind": "BGPPeer",
			"metadata": map[string]any{"name": "cel-ip-sel"},
			"spec":     map[string]any{"peerIP": "2001:db8::1", "peerSelector": "all()"}},
			"peerIP must not be set together with peerSelector"},
		doc{"cel/icmp-code-without-type", map[string]any{"apiVersion": api.APIVersion, "kind": "GlobalNetworkPolicy",
			"metadata": map[string]any{"name": "cel-icmp"},
			"spec": map[string]any{"ingress": []any{
				map[string]any{"action": "Allow", "protocol": "ICMP", "icmp": map[string]any{"type": 8, "code": 0}},
				map[string]any{"action": "Allow", "protocol": "ICMPv6", "notICMP": map[string]any{"code": 0}},
			}}},
			"code needs type to be set too"},
		doc{"cel/http-path-both", map[string]any{"apiVersion": api.APIVersion, "kind": "NetworkPolicy",
			"metadata": map[string]any{"name": "cel-http", "namespace": "default"},
			"spec": map[string]any{"ingress": []any{map[string]any{"action": "Allow",
				"http": map[string]any{"paths": []any{map[string]any{"exact": "/a"}, map[string]any{"exact": "/b", "prefix": "/c"}}}}}}},
			"must set exactly one of exact and prefix"},
		doc{"cel/http-path-neither", map[string]any{"apiVersion": api.APIVersion, "kind": "GlobalNetworkPolicy",
			"metadata": map[string]any{"name": "cel-http2"},
			"spec": map[string]any{"ingress": []any{map[string]any{"action": "Allow",
				"http": map[string]any{"paths": []any{map[string]any{"prefix": ""}}}}}}},
			"must set exactly one of exact and prefix"},
		doc{"enum/tier-default-action", map[string]any{"apiVersion": api.APIVersion, "kind": "Tier",
			"metadata": map[string]any{"name": "enum-tier"},
			"spec":     map[string]any{"order": 10, "defaultAction": "Allow"}},
			`Unsupported value: "Allow": supported values: "Deny", "Pass"`},
	)
	// Each of those is Serval's rule too: api.Load refuses the document.
	for _, d := range mustRefuse {
		js, _ := json.Marshal(d.content)
		if _, err := api.Load(d.name, js, nil); err == nil {
			t.Errorf("%s: the schema refuses it, but api.Load takes it", d.name)
		}
	}
	if len(mustRefuse) < 20 {
		t.Fatalf("only %d invalid documents the schema can judge", len(mustRefuse))
	}
	for _, d := range mustRefuse {
		t.Run(d.name, func(t *testing.T) {
			js, _ := json.Marshal(d.content)
			out, err := c.KubectlStdin(bytes.NewReader(js), "apply", "-f", "-")
			if err == nil {
				t.Fatalf("kubectl apply accepted it:\n%s", out)
			}
			if !strings.Contains(err.Error(), d.want) {
				t.Errorf("refused for another reason than %q: %v", d.want, err)
			}
		})
	}
	accepted := 0
	for _, d := range others {
		js, _ := json.Marshal(d.content)
		if _, err := c.KubectlStdin(bytes.NewReader(js), "apply", "-f", "-"); err == nil {
			accepted++
			if _, err := c.KubectlStdin(bytes.NewReader(js), "delete", "-f", "-", "--wait=false"); err != nil {
				t.Errorf("%s: deleting it again: %v", d.name, err)
			}
		}
	}
	t.Logf("%d invalid manifests refused by the schema; of the %d the schema cannot judge, the API server took %d (Serval refuses them)",
		len(mustRefuse), len(others), accepted)
}

// TestServalWrittenObjects stores objects as the kubernetes backend
// writes them (encoding/json of the Go types, nulls included) through a
// dynamic client: IPAM's internal kinds and the conformance suite's test
// kinds. Each is accepted and reads back equal.
func TestServalWrittenObjects(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(t, "crd-written")
	zero, one, handle := 0, 1, "h1"
	tests := []api.Resource{
		&api.IPAMBlock{ObjectMeta: api.ObjectMeta{Name: "10-65-0-0-30"}, Spec: api.IPAMBlockSpec{
			CIDR: "10.65.0.0/30", Affinity: &[]string{"host:a"}[0],
			Allocations: []*int{&zero, nil, &one, nil}, Unallocated: []int{1, 3},
			Attributes: []api.AllocationAttribute{{HandleID: &handle, Secondary: map[string]string{"node": "a"}}, {}},
		}},
		// nil lists are written as null.
		&api.IPAMBlock{ObjectMeta: api.ObjectMeta{Name: "fd00-0-0-0-0-0-0-0-126"}, Spec: api.IPAMBlockSpec{CIDR: "fd00::/126"}},
		&api.IPAMHandle{ObjectMeta: api.ObjectMeta{Name: "h1"}, Spec: api.IPAMHandleSpec{HandleID: "h1", Block: map[string]int{"10.65.0.0/30": 2}}},
		&api.BlockAffinity{ObjectMeta: api.ObjectMeta{Name: "a-10-65-0-0-30"}, Spec: api.BlockAffinitySpec{State: api.AffinityConfirmed, Node: "a", CIDR: "10.65.0.0/30"}},
		dstest.NewThing("thing-1", map[string]string{"a": "b"}, dstest.ThingSpec{Mode: "Always", Count: 3, Tags: []string{"x"}}),
		dstest.NewNSThing(ns, "nsthing-1", nil, dstest.ThingSpec{Node: "n1"}),
	}
	for _, r := range tests {
		kind := reflect.TypeOf(r).Elem().Name()
		if kind == "Thing" || kind == "NSThing" {
			kind = "Test" + kind
		}
		info, ok := api.LookupKind(kind)
		if !ok {
			t.Fatalf("kind %s is not registered", kind)
		}
		*r.GetTypeMeta() = api.TypeMeta{Kind: info.Kind, APIVersion: api.APIVersion}
		key := api.KeyOf(r)
		t.Run(key.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			js, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var u unstructured.Unstructured
			if err := u.UnmarshalJSON(js); err != nil {
				t.Fatal(err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(GVR(info))
			if info.Namespaced {
				ri = dyn.Resource(GVR(info)).Namespace(key.Namespace)
			}
			if _, err := ri.Create(ctx, &u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
				t.Fatalf("create %s: %v", js, err)
			}
			defer func() { _ = ri.Delete(context.Background(), key.Name, metav1.DeleteOptions{}) }()
			got, err := ri.Get(ctx, key.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			back, err := api.New(info.Kind)
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(fromServer(got))
			if err := json.Unmarshal(gj, back); err != nil {
				t.Fatal(err)
			}
			m := back.GetObjectMeta()
			m.UID, m.ResourceVersion, m.Generation, m.CreationTimestamp = "", "", 0, nil
			bj, _ := json.Marshal(back)
			if !bytes.Equal(bj, js) {
				t.Errorf("read back\n%s\nwrote\n%s", bj, js)
			}
		})
	}
}

// TestCELAccepts applies documents that come close to each CEL rule without
// breaking it: the rules are never stricter than Serval's.
func TestCELAccepts(t *testing.T) {
	c := kubetest.Shared(t)
	installCRDs(t, c)
	docs := []map[string]any{
		{"apiVersion": api.APIVersion, "kind": "IPPool", "metadata": map[string]any{"name": "cel-ok-pool"},
			"spec": map[string]any{"cidr": "10.9.0.0/16", "ipipMode": "CrossSubnet", "vxlanMode": "Never"}},
		{"apiVersion": api.APIVersion, "kind": "IPPool", "metadata": map[string]any{"name": "cel-ok-pool6"},
			"spec": map[string]any{"cidr": "fd00:9::/64", "ipipMode": "", "vxlanMode": "Always"}},
		{"apiVersion": api.APIVersion, "kind": "BGPPeer", "metadata": map[string]any{"name": "cel-ok-peer"},
			"spec": map[string]any{"node": "", "nodeSelector": "all()", "peerIP": "", "peerSelector": "rr == 'true'"}},
		{"apiVersion": api.APIVersion, "kind": "GlobalNetworkPolicy", "metadata": map[string]any{"name": "cel-ok-icmp"},
			"spec": map[string]any{"ingress": []any{
				map[string]any{"action": "Allow", "protocol": "ICMP", "icmp": map[string]any{"type": 8}},
				map[string]any{"action": "Allow", "protocol": "ICMPv6", "notICMP": map[string]any{"type": 128, "code": 0}},
				map[string]any{"action": "Allow", "http": map[string]any{"paths": []any{
					map[string]any{"exact": "/a"}, map[string]any{"prefix": "/b", "exact": ""}}}},
			}}},
		{"apiVersion": api.APIVersion, "kind": "FelixConfiguration", "metadata": map[string]any{"name": "cel-ok-felix"},
			"spec": map[string]any{"routeTableRanges": []any{map[string]any{"min": 1, "max": 250}}}},
	}
	for _, d := range docs {
		name := d["metadata"].(map[string]any)["name"].(string)
		t.Run(name, func(t *testing.T) {
			js, _ := json.Marshal(d)
			if out, err := c.KubectlStdin(bytes.NewReader(js), "apply", "-f", "-"); err != nil {
				t.Fatalf("refused: %v\n%s", err, out)
			}
			if _, err := c.KubectlStdin(bytes.NewReader(js), "delete", "-f", "-"); err != nil {
				t.Errorf("deleting it: %v", err)
			}
		})
	}
}
