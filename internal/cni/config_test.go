package cni

import (
	"errors"
	"strings"
	"testing"
)

func TestLoadNetConf(t *testing.T) {
	const base = `"cniVersion":"1.0.0","name":"net1","type":"serval"`
	tests := []struct {
		name      string
		json      string
		wantField string // "" with wantErr: any message
		wantErr   string // substring of the message; "" means success
	}{
		{"minimal", `{` + base + `,"ipam":{"type":"serval-ipam"}}`, "", ""},
		{"calico string booleans", `{` + base + `,"ipam":{"type":"serval-ipam","assign_ipv4":"false","assign_ipv6":"true"}}`, "", ""},
		{"json booleans", `{` + base + `,"ipam":{"type":"serval-ipam","assign_ipv6":true}}`, "", ""},
		{"pools by name and cidr", `{` + base + `,"ipam":{"type":"serval-ipam","ipv4_pools":["pool-a","10.0.0.0/16"],"ipv6_pools":["fd00::/48"]}}`, "", ""},
		{"unknown keys ignored", `{` + base + `,"foo":{"bar":1},"ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}`, "", ""},
		{"not json", `{` + base + `,`, "", "not valid JSON"},
		{"no name", `{"cniVersion":"1.0.0","type":"serval","ipam":{"type":"serval-ipam"}}`, "name", "is required"},
		{"no ipam type", `{` + base + `}`, "ipam.type", "is required"},
		{"mtu wrong type", `{` + base + `,"mtu":"1500","ipam":{"type":"serval-ipam"}}`, "mtu", "is not a number"},
		{"mtu too small", `{` + base + `,"mtu":20,"ipam":{"type":"serval-ipam"}}`, "mtu", "not a valid MTU"},
		{"pools wrong type", `{` + base + `,"ipam":{"type":"serval-ipam","ipv4_pools":"10.0.0.0/16"}}`, "ipam.ipv4_pools", "is not a list"},
		{"v6 cidr in v4 pools", `{` + base + `,"ipam":{"type":"serval-ipam","ipv4_pools":["fd00::/48"]}}`, "ipam.ipv4_pools[0]", "not an IPv4 CIDR"},
		{"bad pool name", `{` + base + `,"ipam":{"type":"serval-ipam","ipv6_pools":["Not_A_Pool"]}}`, "ipam.ipv6_pools[0]", "neither a CIDR nor a pool name"},
		{"nothing to assign", `{` + base + `,"ipam":{"type":"serval-ipam","assign_ipv4":"false"}}`, "ipam.assign_ipv4", "both false"},
		{"bad boolean", `{` + base + `,"ipam":{"type":"serval-ipam","assign_ipv4":"yes"}}`, "ipam.assign_ipv4", "not a boolean"},
		{"bad log level", `{` + base + `,"log_level":"loud","ipam":{"type":"serval-ipam"}}`, "log_level", "not a log level"},
		{"bad label", `{` + base + `,"labels":{"app":"not ok!"},"ipam":{"type":"serval-ipam"}}`, "", `labels["app"]`},
		{"bad runtime profile", `{` + base + `,"runtimeConfig":{"profiles":["UPPER"]},"ipam":{"type":"serval-ipam"}}`, "runtimeConfig.profiles[0]", "not a valid profile name"},
		{"bad runtime ip", `{` + base + `,"runtimeConfig":{"ips":["10.0.0.300"]},"ipam":{"type":"serval-ipam"}}`, "runtimeConfig.ips[0]", "not an IP address"},
		{"bad endpoint", `{` + base + `,"etcd_endpoints":"127.0.0.1:2379","ipam":{"type":"serval-ipam"}}`, "etcd_endpoints", "not an http"},
		{"missing ca file", `{` + base + `,"etcd_ca_cert_file":"/nonexistent/ca.pem","ipam":{"type":"serval-ipam"}}`, "etcd_ca_cert_file", "cannot read"},
		{"bad nodename", `{` + base + `,"nodename":"Host_1","ipam":{"type":"serval-ipam"}}`, "nodename", "not a valid node name"},
		{"calico kubernetes datastore", `{` + base + `,"datastore_type":"kubernetes","kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"},"ipam":{"type":"serval-ipam"}}`, "", ""},
		{"bad datastore type", `{` + base + `,"datastore_type":"consul","ipam":{"type":"serval-ipam"}}`, "datastore_type", "want etcdv3 or kubernetes"},
		{"long prefix", `{` + base + `,"interface_prefix":"toolong","ipam":{"type":"serval-ipam"}}`, "interface_prefix", "1-4 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadNetConf([]byte(tt.json))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadNetConf: %v", err)
				}
				if c.Name != "net1" {
					t.Errorf("name = %q", c.Name)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if ce.Field != tt.wantField && tt.wantField != "" {
				t.Errorf("field = %q, want %q (%v)", ce.Field, tt.wantField, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantErr)
			}
			if e := cniError("x", 999, err); e.Code != 7 {
				t.Errorf("CNI code = %d, want 7", e.Code)
			}
		})
	}
}

func TestConfDefaults(t *testing.T) {
	t.Setenv(EnvEtcdEndpoints, "")
	c, err := LoadNetConf([]byte(`{"cniVersion":"0.3.1","name":"n","type":"serval","ipam":{"type":"serval-ipam"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.IPAM.WantIPv4() || c.IPAM.WantIPv6() {
		t.Errorf("default families: v4 %v v6 %v, want v4 only", c.IPAM.WantIPv4(), c.IPAM.WantIPv6())
	}
	if got := c.EtcdConfig().Endpoints; len(got) != 1 || got[0] != DefaultEtcdEndpoints {
		t.Errorf("endpoints = %v", got)
	}
	t.Setenv(EnvEtcdEndpoints, "http://10.0.0.1:2379, http://10.0.0.2:2379")
	if got := c.EtcdConfig().Endpoints; len(got) != 2 || got[1] != "http://10.0.0.2:2379" {
		t.Errorf("endpoints from env = %v", got)
	}
	c.EtcdEndpoints = "https://etcd:2379"
	if got := c.EtcdConfig().Endpoints; len(got) != 1 || got[0] != "https://etcd:2379" {
		t.Errorf("endpoints from config = %v", got)
	}
	if c.VethPrefix() != "cali" {
		t.Errorf("prefix = %q", c.VethPrefix())
	}
	if c.EtcdConfig().RequestTimeout != DefaultDatastoreTimeout {
		t.Errorf("timeout = %v", c.EtcdConfig().RequestTimeout)
	}
}
