package crd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore/dstest"
)

const manifestDir = "../../manifests/crds"

// realKinds are the kinds whose CRDs are files in manifests/crds: every
// registered kind but the conformance suite's test kinds, which this test
// binary registers by importing dstest.
func realKinds() []api.KindInfo {
	var out []api.KindInfo
	for _, k := range api.Kinds() {
		if k.Kind != dstest.ThingKind && k.Kind != dstest.NSThingKind {
			out = append(out, k)
		}
	}
	return out
}

func mustFor(t *testing.T, kind string) *CustomResourceDefinition {
	t.Helper()
	info, ok := api.LookupKind(kind)
	if !ok {
		t.Fatalf("kind %s is not registered", kind)
	}
	c, err := For(info)
	if err != nil {
		t.Fatalf("For(%s): %v", kind, err)
	}
	return c
}

// at finds the schema at a path such as "spec.ingress[*].protocol".
func at(t *testing.T, s *Schema, path string) *Schema {
	t.Helper()
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			next := s.Properties[name]
			if next == nil {
				t.Fatalf("%s: no property %q (have %v)", path, name, propNames(s))
			}
			s = next
		}
		for ; rest != ""; rest = strings.TrimPrefix(rest, "*][") {
			switch {
			case s.Items != nil:
				s = s.Items
			case s.AdditionalProperties != nil:
				s = s.AdditionalProperties
			default:
				t.Fatalf("%s: %q is neither an array nor a map", path, name)
			}
			if rest == "*]" {
				break
			}
		}
	}
	return s
}

func propNames(s *Schema) []string {
	var out []string
	for k := range s.Properties {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func i64(n int64) *int64 { return &n }

// TestManifestsInSync fails when manifests/crds is not what the generator
// writes for internal/api's kinds.
func TestManifestsInSync(t *testing.T) {
	want, err := Files(realKinds())
	if err != nil {
		t.Fatal(err)
	}
	have, err := filepath.Glob(filepath.Join(manifestDir, "*."+Group+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range have {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s is the CRD of no kind of internal/api: run `make crds`", f)
		}
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(manifestDir, name))
		if err != nil {
			t.Errorf("%v: run `make crds`", err)
			continue
		}
		if !bytes.Equal(got, content) {
			t.Errorf("manifests/crds/%s differs from what internal/crd generates from internal/api's types: run `make crds`", name)
		}
	}
}

// TestNames checks names, scope, version and the status subresource.
func TestNames(t *testing.T) {
	tests := []struct {
		kind, name, plural, singular, scope string
		shortNames                          []string
		status                              bool
	}{
		{"GlobalNetworkPolicy", "globalnetworkpolicies.projectcalico.org", "globalnetworkpolicies", "globalnetworkpolicy", "Cluster",
			[]string{"calicoglobalnetworkpolicies", "calicoglobalnetworkpolicy", "cgnp", "gnp", "gnps"}, false},
		{"NetworkPolicy", "networkpolicies.projectcalico.org", "networkpolicies", "networkpolicy", "Namespaced",
			[]string{"caliconetworkpolicies", "caliconetworkpolicy", "cnp", "np", "nps", "pol", "policies", "policy", "pols"}, false},
		// "no" is Kubernetes' own short name for nodes: left out.
		{"Node", "nodes.projectcalico.org", "nodes", "node", "Cluster", nil, true},
		{"WorkloadEndpoint", "workloadendpoints.projectcalico.org", "workloadendpoints", "workloadendpoint", "Namespaced",
			[]string{"wep", "weps"}, false},
		{"IPAMBlock", "ipamblocks.projectcalico.org", "ipamblocks", "ipamblock", "Cluster", nil, false},
		{dstest.ThingKind, "testthings.projectcalico.org", "testthings", "testthing", "Cluster", nil, false},
		{dstest.NSThingKind, "testnsthings.projectcalico.org", "testnsthings", "testnsthing", "Namespaced", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			c := mustFor(t, tc.kind)
			if c.APIVersion != "apiextensions.k8s.io/v1" || c.Kind != "CustomResourceDefinition" {
				t.Errorf("type %s %s", c.APIVersion, c.Kind)
			}
			n := c.Spec.Names
			if c.Metadata.Name != tc.name || n.Plural != tc.plural || n.Singular != tc.singular ||
				n.Kind != tc.kind || n.ListKind != tc.kind+"List" || c.Spec.Scope != tc.scope || c.Spec.Group != "projectcalico.org" {
				t.Errorf("got name %s, names %+v, scope %s, group %s", c.Metadata.Name, n, c.Spec.Scope, c.Spec.Group)
			}
			if !slices.Equal(n.ShortNames, tc.shortNames) {
				t.Errorf("short names %q, want %q", n.ShortNames, tc.shortNames)
			}
			if len(c.Spec.Versions) != 1 {
				t.Fatalf("%d versions, want 1", len(c.Spec.Versions))
			}
			v := c.Spec.Versions[0]
			if v.Name != "v3" || !v.Served || !v.Storage {
				t.Errorf("version %+v", v)
			}
			if c.HasStatus() != tc.status {
				t.Errorf("status subresource %v, want %v", c.HasStatus(), tc.status)
			}
			info, _ := api.LookupKind(tc.kind)
			if g := GVR(info); g.Group != "projectcalico.org" || g.Version != "v3" || g.Resource != tc.plural {
				t.Errorf("GVR %v", g)
			}
		})
	}
}

// TestSchemaPaths checks key paths of a few kinds' schemas.
func TestSchemaPaths(t *testing.T) {
	tests := []struct {
		kind, path string
		want       Schema // compared field by field, Properties and Items left out
	}{
		{"NetworkPolicy", "spec.ingress[*].action", Schema{Type: "string", Enum: []string{"Allow", "Deny", "Log", "Pass"}}},
		{"NetworkPolicy", "spec.ingress[*].protocol", Schema{XIntOrString: true}},
		{"NetworkPolicy", "spec.egress[*].destination.ports[*]", Schema{XIntOrString: true}},
		{"NetworkPolicy", "spec.order", Schema{Type: "number"}},
		{"NetworkPolicy", "spec.types[*]", Schema{Type: "string", Enum: []string{"Ingress", "Egress"}}},
		{"NetworkPolicy", "spec.ingress[*].metadata.annotations", Schema{Type: "object"}},
		{"NetworkPolicy", "spec.ingress[*].metadata.annotations[*]", Schema{Type: "string"}},
		{"NetworkPolicy", "spec.ingress[*].icmp.type", Schema{Type: "integer", Format: "int64"}},
		{"GlobalNetworkPolicy", "spec.selector", Schema{Type: "string"}},
		{"StagedGlobalNetworkPolicy", "spec.stagedAction", Schema{Type: "string", Enum: []string{"", "Set", "Delete"}}},
		{"StagedGlobalNetworkPolicy", "spec.preDNAT", Schema{Type: "boolean"}}, // from the embedded spec
		{"StagedKubernetesNetworkPolicy", "spec.ingress[*].ports[*].port", Schema{XIntOrString: true}},
		{"StagedKubernetesNetworkPolicy", "spec.podSelector.matchLabels[*]", Schema{Type: "string"}},
		{"IPPool", "spec.vxlanMode", Schema{Type: "string", Enum: []string{"", "Never", "Always", "CrossSubnet"}}},
		{"IPPool", "spec.assignmentMode", Schema{Type: "string", Enum: []string{"Automatic", "Manual"}}},
		{"BGPPeer", "spec.asNumber", Schema{XIntOrString: true}},
		{"BGPPeer", "spec.keepaliveTime", Schema{Type: "string"}},
		{"BGPPeer", "spec.ttlSecurity", Schema{Type: "integer", Format: "int32", Minimum: i64(0), Maximum: i64(255)}},
		{"BGPConfiguration", "spec.listenPort", Schema{Type: "integer", Format: "int32", Minimum: i64(0), Maximum: i64(65535)}},
		{"BGPConfiguration", "spec.nodeMeshPassword.secretKeyRef", Schema{Type: "object", Required: []string{"key"}}},
		{"HostEndpoint", "spec.ports[*]", Schema{Type: "object", Required: []string{"name", "protocol"}}},
		{"IPAMConfiguration", "spec", Schema{Type: "object"}}, // strictAffinity: a missing boolean is false
		{"FelixConfiguration", "spec.bpfLogLevel", Schema{Type: "string", Enum: []string{"", "Off", "Info", "Debug"}}},
		{"FelixConfiguration", "spec.iptablesBackend", Schema{Type: "string"}}, // enumfold: case-insensitive, no enum
		{"FelixConfiguration", "spec.logSeverityScreen", Schema{Type: "string", Enum: []string{"", "Trace", "Debug", "Info", "Warning", "Error", "Fatal"}}},
		{"FelixConfiguration", "spec.wireguardListeningPort", Schema{Type: "integer", Format: "int64", Minimum: i64(1), Maximum: i64(65535)}},
		{"FelixConfiguration", "spec.goGCThreshold", Schema{Type: "integer", Format: "int64", Minimum: i64(-1)}},
		{"FelixConfiguration", "spec.iptablesMarkMask", Schema{Type: "integer", Format: "int64", Minimum: i64(0), Maximum: i64(4294967295)}},
		{"FelixConfiguration", "spec.kubeNodePortRanges[*]", Schema{XIntOrString: true}},
		{"FelixConfiguration", "spec.bpfLogFilters[*]", Schema{Type: "string"}},
		{"FelixConfiguration", "spec.healthTimeoutOverrides[*]", Schema{Type: "object", Required: []string{"name", "timeout"}}},
		{"IPAMBlock", "spec.allocations", Schema{Type: "array", Nullable: true}},
		{"IPAMBlock", "spec.allocations[*]", Schema{Type: "integer", Format: "int64", Nullable: true}},
		{"IPAMBlock", "spec.attributes[*].handle_id", Schema{Type: "string"}},
		{"IPAMHandle", "spec.block[*]", Schema{Type: "integer", Format: "int64"}},
		{"BlockAffinity", "spec.state", Schema{Type: "string", Enum: []string{"pending", "confirmed", "pendingDeletion"}}},
		{"BlockAffinity", "spec", Schema{Type: "object", Required: []string{"cidr", "node", "state"}}},
		{"Node", "status.podCIDRs[*]", Schema{Type: "string"}},
		{"Node", "metadata", Schema{Type: "object"}},
		{"Tier", "spec.defaultAction", Schema{Type: "string", Enum: []string{"Deny", "Pass"}}},
		{dstest.ThingKind, "spec.count", Schema{Type: "integer", Format: "int64"}},
		{dstest.NSThingKind, "spec.tags[*]", Schema{Type: "string"}},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.path, func(t *testing.T) {
			s := *at(t, mustFor(t, tc.kind).Spec.Versions[0].Schema.OpenAPIV3Schema, tc.path)
			s.Properties, s.Items, s.AdditionalProperties, s.XValidations = nil, nil, nil, nil
			if !reflect.DeepEqual(s, tc.want) {
				got, _ := json.Marshal(s)
				want, _ := json.Marshal(tc.want)
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestCELRules checks where the CEL rules are.
func TestCELRules(t *testing.T) {
	tests := []struct {
		kind, path, contains string
	}{
		{"IPPool", "spec", "has(self.ipipMode)"},
		{"FelixConfiguration", "spec", "has(self.routeTableRanges)"},
		{"BGPPeer", "spec", "has(self.nodeSelector)"},
		{"GlobalNetworkPolicy", "spec.ingress[*].icmp", "!has(self.code) || has(self.type)"},
		{"NetworkPolicy", "spec.egress[*].notICMP", "!has(self.code) || has(self.type)"},
		{"Profile", "spec.ingress[*].http.paths[*]", "self.exact != ''"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.path, func(t *testing.T) {
			s := at(t, mustFor(t, tc.kind).Spec.Versions[0].Schema.OpenAPIV3Schema, tc.path)
			if len(s.XValidations) == 0 || !strings.Contains(s.XValidations[0].Rule, tc.contains) || s.XValidations[0].Message == "" {
				t.Errorf("rules %+v", s.XValidations)
			}
		})
	}
}

// TestStructural checks that the schema of every kind, the test kinds
// included, is structural.
func TestStructural(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(api.Kinds()) {
		t.Fatalf("All returned %d CRDs for %d kinds", len(all), len(api.Kinds()))
	}
	for _, c := range all {
		if p := structuralProblems(c.Spec.Versions[0].Schema.OpenAPIV3Schema, "", true); len(p) > 0 {
			t.Errorf("%s is not structural:\n%s", c.Metadata.Name, strings.Join(p, "\n"))
		}
		u, err := c.Unstructured()
		if err != nil {
			t.Fatal(err)
		}
		if u["kind"] != "CustomResourceDefinition" {
			t.Errorf("%s: unstructured kind %v", c.Metadata.Name, u["kind"])
		}
	}
}

// rawDocuments splits a YAML file into its documents as JSON-decoded values.
func rawDocuments(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, chunk := range strings.Split(string(data), "\n---\n") {
		js, err := yaml.YAMLToJSON([]byte(chunk))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func schemaOf(t *testing.T, kind string) *Schema {
	t.Helper()
	return mustFor(t, kind).Spec.Versions[0].Schema.OpenAPIV3Schema
}

// TestValidManifestsFitSchema checks every valid manifest of internal/api's
// tests against its kind's schema, twice: as written (what kubectl sends)
// and as Serval writes it after defaults (what the kubernetes backend
// sends). Nothing may be refused, and nothing pruned.
func TestValidManifestsFitSchema(t *testing.T) {
	files, _ := filepath.Glob("../api/testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in ../api/testdata/valid")
	}
	n := 0
	for _, file := range files {
		for i, doc := range rawDocuments(t, file) {
			n++
			kind, _ := doc["kind"].(string)
			where := fmt.Sprintf("%s document %d", filepath.Base(file), i+1)
			if p := validateValue(doc, schemaOf(t, kind), ""); len(p) > 0 {
				t.Errorf("%s (%s) as written: %s", where, kind, strings.Join(p, "; "))
			}
			js, _ := json.Marshal(doc)
			docs, err := api.Load(file, js, nil)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			out, err := json.Marshal(docs[0].Resource)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			if p := validateValue(m, schemaOf(t, kind), ""); len(p) > 0 {
				t.Errorf("%s (%s) as Serval writes it: %s", where, kind, strings.Join(p, "; "))
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d documents checked", n)
	}
}

// TestInvalidManifestsCaught checks that the schema refuses the invalid
// manifests of internal/api's tests that a schema can judge (types, enums,
// bounds, required and unknown fields), each for the right reason. The
// others (CIDRs, selectors, names, rules between fields) are Serval's to
// refuse; the kube-apiserver test checks the CEL rules.
func TestInvalidManifestsCaught(t *testing.T) {
	tests := []struct {
		file  string
		index int // 1-based document
		want  []string
	}{
		{"ipam_bgp.yaml", 2, []string{`spec.strictAffinity: expected a boolean`}},
		{"ipam_bgp.yaml", 5, []string{`spec.listenPort: 70000 is more than the maximum 65535`}},
		{"ipam_bgp.yaml", 7, []string{`spec.nodeMeshPassword.secretKeyRef: required field "key" is missing`}},
		{"ipam_bgp.yaml", 20, []string{`spec.ttlSecurity: 256 is more than the maximum 255`}},
		{"ippool.yaml", 1, []string{`spec: required field "cidr" is missing`}},
		{"ippool.yaml", 12, []string{`spec.ipipMode: "Sometimes" is not one of`, `spec.vxlanMode: "always" is not one of`}},
		{"ippool.yaml", 16, []string{`spec.allowedUses[0]: "Workloads" is not one of`}},
		{"ippool.yaml", 18, []string{`spec.assignmentMode: "Auto" is not one of`}},
		{"ippool.yaml", 19, []string{`spec.blockSize: expected an integer`}},
		{"ippool.yaml", 20, []string{`spec: unknown field "blocksize"`}},
		{"others.yaml", 8, []string{`spec.ports[0]: required field "name"`, `spec.ports[2]: required field "protocol"`}},
		{"others.yaml", 9, []string{`spec.ports[0].port: 65536 is more than the maximum 65535`}},
		{"others.yaml", 16, []string{`spec.bpfLogLevel: "off"`, `spec.defaultEndpointToHostAction: "ACCEPT"`,
			`spec.logSeverityScreen: "Verbose"`, `spec.vxlanVNI: 16777216 is more than`, `spec.wireguardListeningPort: 0 is less than the minimum 1`}},
		{"others.yaml", 17, []string{`spec: unknown field "logSeverityscreen"`}},
		{"policy.yaml", 2, []string{`spec.ingress[0].destination.ports[6]: expected an integer or a string`, `spec.ingress[0].destination.ports[7]: 80.5 is not an integer`}},
		{"policy.yaml", 7, []string{`spec.egress[0].action: "Reject"`, `spec.ingress[0].action: "allow"`, `spec.ingress[1]: required field "action"`}},
		{"policy.yaml", 13, []string{`spec.types[0]: "ingress" is not one of Ingress, Egress`}},
		{"policy.yaml", 21, []string{`spec.doNotTrack: expected a boolean`, `spec.ingress[1].ipVersion: expected an integer`, `spec.order: expected a number`}},
		{"policy.yaml", 26, []string{`spec.egress[0].destination: unknown field "prots"`}},
		{"staged.yaml", 1, []string{`spec.stagedAction: "Maybe" is not one of`}},
		{"staged.yaml", 3, []string{`spec: unknown field "colour"`}},
		{"staged.yaml", 5, []string{`spec.policyTypes[0]: "Both" is not one of Ingress, Egress`}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s#%d", tc.file, tc.index), func(t *testing.T) {
			docs := rawDocuments(t, filepath.Join("../api/testdata/invalid", tc.file))
			if tc.index > len(docs) {
				t.Fatalf("only %d documents", len(docs))
			}
			doc := docs[tc.index-1]
			kind, _ := doc["kind"].(string)
			got := validateValue(doc, schemaOf(t, kind), "")
			if len(got) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
					t.Errorf("no problem matches %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

// TestForErrors checks that a Go type the generator cannot describe is an
// error naming the field, not a schema that guesses.
func TestForErrors(t *testing.T) {
	tests := []struct {
		name string
		new  func() api.Resource
		want string
	}{
		{"self-marshalling type", func() api.Resource { return &badMarshal{} }, "spec.when: type big.Float encodes itself"},
		{"recursive type", func() api.Resource { return &badRecursive{} }, "spec.next: type crd.recursive contains itself"},
		{"map with int keys", func() api.Resource { return &badMap{} }, "spec.m: map key type int is not a string"},
		{"interface", func() api.Resource { return &badAny{} }, "spec.v: type interface {} (interface) has no JSON schema"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := For(api.KindInfo{Kind: "Bad", Plural: "bads", New: tc.new})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := For(api.KindInfo{Kind: "Bad"}); err == nil {
		t.Error("For accepted a registry entry without plural and New")
	}
}

type fakeBase struct {
	api.TypeMeta
	api.ObjectMeta `json:"metadata"`
}

func (fakeBase) SetDefaults()            {}
func (fakeBase) Validate() api.ErrorList { return nil }

type badMarshal struct {
	fakeBase
	Spec struct {
		When big.Float `json:"when"`
	} `json:"spec"`
}

type recursive struct {
	Next *recursive `json:"next,omitempty"`
}

type badRecursive struct {
	fakeBase
	Spec recursive `json:"spec"`
}

type badMap struct {
	fakeBase
	Spec struct {
		M map[int]string `json:"m"`
	} `json:"spec"`
}

type badAny struct {
	fakeBase
	Spec struct {
		V any `json:"v"`
	} `json:"spec"`
}

// TestRequiredIsServalsRule checks that a field the schema requires is one
// Serval requires too: in every valid manifest of internal/api's tests,
// leaving out any one required field that is there makes api.Load refuse
// the document. (The schema must not refuse what servalctl accepts.)
func TestRequiredIsServalsRule(t *testing.T) {
	files, _ := filepath.Glob("../api/testdata/valid/*.yaml")
	checked := 0
	for _, file := range files {
		for i, doc := range rawDocuments(t, file) {
			kind, _ := doc["kind"].(string)
			var walk func(v any, s *Schema, path string)
			walk = func(v any, s *Schema, path string) {
				switch x := v.(type) {
				case map[string]any:
					for _, r := range s.Required {
						val, ok := x[r]
						if !ok {
							continue
						}
						delete(x, r)
						js, _ := json.Marshal(doc)
						if _, err := api.Load(file, js, nil); err == nil {
							t.Errorf("%s document %d: without %s.%s the document still loads, but the schema requires the field", filepath.Base(file), i+1, orTop(path), r)
						}
						x[r] = val
						checked++
					}
					for k, e := range x {
						switch {
						case s.AdditionalProperties != nil:
							walk(e, s.AdditionalProperties, path+"."+k)
						case s.Properties[k] != nil && !(path == "" && k == "metadata"):
							walk(e, s.Properties[k], path+"."+k)
						}
					}
				case []any:
					for j, e := range x {
						walk(e, s.Items, fmt.Sprintf("%s[%d]", path, j))
					}
				}
			}
			walk(doc, schemaOf(t, kind), "")
		}
	}
	if checked < 10 {
		t.Errorf("only %d required fields checked", checked)
	}
}
