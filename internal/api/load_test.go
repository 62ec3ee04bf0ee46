package api

import (
	"strings"
	"testing"
)

func TestLoadReportsEverythingAtOnce(t *testing.T) {
	const doc = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec:
  cidr: 7
  blockSize: 40
  nodeSelectr: all()
`
	_, err := Load("pool.yaml", []byte(doc), nil)
	if err == nil {
		t.Fatal("Load accepted a bad pool")
	}
	got := err.Error()
	for _, want := range []string{
		`pool.yaml: document 1 (line 1): IPPool "p": spec.cidr: expected a string, got number 7`,
		`pool.yaml: document 1 (line 1): IPPool "p": spec.nodeSelectr: unknown field "nodeSelectr" (did you mean "nodeSelector"?)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	// cidr could not be decoded, so "cidr is required" would only repeat it.
	if strings.Contains(got, "spec.cidr: is required") {
		t.Errorf("validation repeated a decoding problem:\n%s", got)
	}
}

func TestLoadPrepareAndDefaults(t *testing.T) {
	const doc = `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: np}
spec: {selector: all()}
`
	docs, err := Load("np.yaml", []byte(doc), func(r Resource) error {
		r.GetObjectMeta().Namespace = "prod"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	np := docs[0].Resource.(*NetworkPolicy)
	if np.Namespace != "prod" || np.Spec.Tier != "default" || len(np.Spec.Types) != 1 {
		t.Errorf("prepare or defaults not applied: %+v", np)
	}
}
