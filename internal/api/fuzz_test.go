package api

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load, as `servalctl apply -f` would
// from a hostile or broken file. Bad input must be an error, never a
// panic; every error must say which document it is about; and what Load
// accepts must survive a round trip (encode, load again) unchanged in
// validity, since servalctl get -o yaml | servalctl apply -f - relies on it.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range files {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "---\n", "[]", "null", "a: [\n", "\t- x", "kind: List\nitems: [1]",
		"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/8}",
		"apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\nspec: {selector: \"a == 'b'\", ingress: [{action: Allow, source: {ports: ['1:2']}}]}",
		`{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer","metadata":{"name":"x"},"spec":{"peerIP":"10.0.0.1:179","asNumber":"1.2"}}`,
		"kind: GlobalNetworkPolicy\nspec: {order: 1e400}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Load("in.yaml", data, nil)
		if err != nil {
			for _, e := range unjoin(err) {
				var de *DocumentError
				if !errors.As(e, &de) {
					t.Fatalf("Load error %T %q does not name its document", e, e)
				}
				if de.Err == nil || strings.TrimSpace(de.Err.Error()) == "" {
					t.Fatalf("Load error %q says nothing beyond its document", e)
				}
			}
		}
		for _, d := range docs {
			js, err := json.Marshal(d.Resource)
			if err != nil {
				t.Fatalf("accepted %s but cannot encode it: %v", d.Where(), err)
			}
			again, err := Load("again.json", js, nil)
			if err != nil || len(again) != 1 {
				t.Fatalf("accepted %s but its encoding %s does not load again: %v", d.Where(), js, err)
			}
		}
	})
}

// unjoin splits an errors.Join into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
