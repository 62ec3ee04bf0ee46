package cli

import (
	"bytes"
	"testing"

	"github.com/servalnet/serval/internal/admission"
)

func TestPrintRejected(t *testing.T) {
	var b bytes.Buffer
	printRejected(&b, nil)
	if b.Len() != 0 {
		t.Errorf("printed %q for no rejected objects", b.String())
	}
	printRejected(&b, []admission.Rejected{
		{Kind: "GlobalNetworkPolicy", Name: "web", Action: "failed closed", Reason: "spec.ingress[0].http: is not supported by Serval: no proxy"},
		{Kind: "WorkloadEndpoint", Namespace: "default", Name: "h-cni-x-eth0", Action: "skipped", Reason: "spec.interfaceName: \"cali/../all\" is not a valid interface name\nspec.mac: bad"},
	})
	want := `
2 object(s) in the datastore failed validation:
  GlobalNetworkPolicy "web" (failed closed):
    spec.ingress[0].http: is not supported by Serval: no proxy
  WorkloadEndpoint "default/h-cni-x-eth0" (skipped):
    spec.interfaceName: "cali/../all" is not a valid interface name
    spec.mac: bad
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
