package api_test

import (
	"fmt"

	"github.com/servalnet/serval/internal/api"
)

// Decode a manifest, fill in Calico's defaults, and validate.
func Example() {
	manifest := `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-v6
spec:
  cidr: fd00:10::/64
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-db
spec:
  tier: security
  selector: app == "db"
  ingress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [5432, 70000]
`
	docs, err := api.Decode("example.yaml", []byte(manifest))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range docs {
		d.Resource.SetDefaults()
		if err := api.Validate(d.Resource); err != nil {
			fmt.Println(err)
			continue
		}
		if pool, ok := d.Resource.(*api.IPPool); ok {
			fmt.Println(pool.Name, pool.Spec.CIDR, pool.Spec.BlockSize, pool.Spec.NodeSelector)
		}
	}
	// Output:
	// pool-v6 fd00:10::/64 122 all()
	// GlobalNetworkPolicy "allow-db": spec.ingress[0].destination.ports[1]: "70000" is not a valid port (1-65535)
}
