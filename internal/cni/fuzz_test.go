package cni

import (
	"errors"
	"testing"
)

// FuzzLoadNetConf feeds arbitrary bytes to LoadNetConf, as a container
// runtime hands the plugin whatever network configuration it was given.
// Bad input must be an error, never a panic, and every error must be a
// *ConfigError (CNI code 7) with a message; an accepted configuration
// must keep its invariants (a name and an IPAM type, something to assign).
func FuzzLoadNetConf(f *testing.F) {
	const base = `"cniVersion":"1.0.0","name":"net1","type":"serval"`
	for _, s := range []string{
		`{` + base + `,"ipam":{"type":"serval-ipam"}}`,
		`{` + base + `,"mtu":1400,"etcd_endpoints":"http://127.0.0.1:2379","nodename":"h1","interface_prefix":"cali","ipam":{"type":"serval-ipam","assign_ipv4":"true","assign_ipv6":"true","ipv4_pools":["10.0.0.0/16","pool-a"],"ipv6_pools":["fd00::/48"]}}`,
		`{` + base + `,"labels":{"app":"x"},"runtimeConfig":{"profiles":["p"],"ips":["10.0.0.1"]},"ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}`,
		`{` + base + `,"ipam":{"type":"serval-ipam","assign_ipv4":"false"}}`,
		`{` + base + `,"ipam":{"type":"serval-ipam","assign_ipv4":7}}`,
		`{` + base + `,"mtu":"x","ipam":{}}`,
		`{`, `null`, `[]`, `""`, `{"ipam":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := LoadNetConf(data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("LoadNetConf error %T %q is not a *ConfigError", err, err)
			}
			if ce.Msg == "" {
				t.Fatalf("LoadNetConf error %#v has no message", ce)
			}
			if c != nil {
				t.Fatalf("LoadNetConf returned a configuration with error %v", err)
			}
			return
		}
		if c == nil || c.Name == "" || c.IPAM.Type == "" {
			t.Fatalf("LoadNetConf accepted %q as %+v: no name or no IPAM type", data, c)
		}
		if c.IPAM.Type == "serval-ipam" && !c.IPAM.WantIPv4() && !c.IPAM.WantIPv6() {
			t.Fatalf("LoadNetConf accepted %q, which assigns nothing", data)
		}
	})
}
