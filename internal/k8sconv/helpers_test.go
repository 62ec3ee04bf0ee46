package k8sconv

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/servalnet/serval/internal/api"
)

// checkResource compares a converted resource with the YAML expected (the
// whole object, as the datastore would store it), then checks that it is
// valid as api defaults and validates it.
func checkResource(t *testing.T, got api.Resource, want string) {
	t.Helper()
	gotJSON, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	wantJSON, err := yaml.YAMLToJSON([]byte(want))
	if err != nil {
		t.Fatalf("the expected YAML does not parse: %v", err)
	}
	var g, w any
	if err := json.Unmarshal(gotJSON, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wantJSON, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		gy, _ := yaml.JSONToYAML(gotJSON)
		t.Errorf("got:\n%s\nwant:\n%s", gy, strings.TrimSpace(want))
	}
	checkValid(t, got)
}

// checkValid: the resource passes api's defaults and validation.
func checkValid(t *testing.T, r api.Resource) {
	t.Helper()
	r.SetDefaults()
	if err := api.Validate(r); err != nil {
		t.Errorf("the converted resource is not valid:\n%v", err)
	}
}

// wantErr checks err against a wanted substring ("" for no error).
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not contain %q", err, want)
	}
}
