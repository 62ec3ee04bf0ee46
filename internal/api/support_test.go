package api

import (
	"regexp"
	"strings"
	"testing"
)

// TestRefusalsCovered checks that every refusal of support.go has a case
// in testdata/invalid/refused.yaml (which TestInvalidManifests runs), so
// that no refusal goes untested.
func TestRefusalsCovered(t *testing.T) {
	cases := readInvalidCases(t, "testdata/invalid/refused.yaml")
	for _, f := range Refusals() {
		re := regexp.MustCompile(`(^|: )` + strings.ReplaceAll(regexp.QuoteMeta(f.Field), `\[\]`, `\[\d+\]`) + `(\[\d+\])?: .*is not supported by Serval`)
		found := false
		for _, c := range cases {
			if !strings.Contains(c.text, "\nkind: "+f.Kind+"\n") {
				continue
			}
			for _, w := range c.wants {
				found = found || re.MatchString(w)
			}
		}
		if !found {
			t.Errorf("%s %s: no case in testdata/invalid/refused.yaml", f.Kind, f.Field)
		}
	}
}

// TestRefusalNeedsValidInput: a resource already invalid by Calico's rules
// is reported for that alone, not also for what Serval cannot honour.
func TestRefusalNeedsValidInput(t *testing.T) {
	p := &IPPool{TypeMeta: TypeMeta{Kind: "IPPool", APIVersion: APIVersion}, ObjectMeta: ObjectMeta{Name: "p"},
		Spec: IPPoolSpec{CIDR: "10.0.0.0/16", IPIPMode: "Sometimes", NamespaceSelector: "team == 'a'"}}
	err := Validate(p)
	if err == nil || strings.Contains(err.Error(), "not supported") || !strings.Contains(err.Error(), "spec.ipipMode") {
		t.Fatalf("got %v, want only the invalid-mode problem", err)
	}
	p.Spec.IPIPMode = EncapAlways
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), `spec.namespaceSelector: "team == 'a'" is not supported by Serval`) {
		t.Fatalf("got %v, want the refusal", err)
	}
	p.Spec.NamespaceSelector = ""
	if err := Validate(p); err != nil {
		t.Fatalf("ipipMode Always (implemented): %v", err)
	}
}
