package cli_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// refusedCases are the documents of the API's refusal cases (every field
// Serval refuses has one there, checked by the api package), each with the
// "# want:" lines naming the refused fields.
func refusedCases(t *testing.T) []struct {
	doc, name string
	fields    []string
} {
	t.Helper()
	data, err := os.ReadFile("../../internal/api/testdata/invalid/refused.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fieldRE := regexp.MustCompile(`(spec\.[A-Za-z0-9.\[\]]+): `)
	var out []struct {
		doc, name string
		fields    []string
	}
	for i, chunk := range strings.Split(string(data), "\n---\n") {
		c := struct {
			doc, name string
			fields    []string
		}{doc: chunk, name: fmt.Sprintf("case%d", i)}
		for _, l := range strings.Split(chunk, "\n") {
			if w, ok := strings.CutPrefix(l, "# want: "); ok {
				if m := fieldRE.FindStringSubmatch(w); m != nil {
					c.fields = append(c.fields, m[1])
				}
			}
			if k, ok := strings.CutPrefix(l, "kind: "); ok {
				c.name += "-" + k
			}
		}
		if len(c.fields) == 0 {
			t.Fatalf("refused.yaml document %d names no field", i)
		}
		out = append(out, c)
	}
	return out
}

// TestRefusals: servalctl validate, create and apply refuse every field
// Serval cannot honour, name the field, exit non-zero and write nothing —
// not even the valid document given with it.
func TestRefusals(t *testing.T) {
	for i, c := range refusedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			good := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: refusal-good-%d}\nspec: {nets: [192.0.2.0/24]}\n", i)
			in := []byte(good + "---\n" + c.doc + "\n")
			for _, verb := range []string{"validate", "create", "apply"} {
				r := ctl(in, verb, "-f", "-")
				wants := []string{"err:nothing was written"}
				if verb == "validate" {
					wants = nil
				}
				for _, f := range c.fields {
					wants = append(wants, "err:"+f+": ", "err:is not supported by Serval")
				}
				expect(t, r, 1, wants...)
			}
			expect(t, ctl(nil, "get", "globalnetworkset", fmt.Sprintf("refusal-good-%d", i)), 1, "err:does not exist")
		})
	}
}

// TestRefusedReplace: replacing a valid object with one Serval refuses
// fails and leaves the stored object as it was.
func TestRefusedReplace(t *testing.T) {
	pool := "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: refusal-replace}\nspec: {cidr: 10.77.0.0/16%s}\n"
	expect(t, ctl([]byte(fmt.Sprintf(pool, "")), "create", "-f", "-"), 0, `out:IPPool "refusal-replace" created`)
	defer ctl(nil, "delete", "ippool", "refusal-replace")
	for _, extra := range []string{", allowedUses: [LoadBalancer]", `, namespaceSelector: "team == 'a'"`} {
		r := ctl([]byte(fmt.Sprintf(pool, extra)), "replace", "-f", "-")
		field := strings.TrimPrefix(strings.SplitN(extra, ":", 2)[0], ", ")
		expect(t, r, 1, "err:spec."+field, "err:is not supported by Serval", "err:nothing was written")
	}
	r := ctl(nil, "get", "ippool", "refusal-replace", "-o", "yaml")
	expect(t, r, 0, "out:generation: 1", "out:ipipMode: Never", "out:vxlanMode: Never", "out:- Workload")
	if strings.Contains(r.stdout, "namespaceSelector") || strings.Contains(r.stdout, "LoadBalancer") {
		t.Errorf("a refused replace changed the pool:\n%s", r.stdout)
	}
}
