package lab

import (
	"reflect"
	"strings"
	"testing"
)

func TestEtcdClusterTopology(t *testing.T) {
	tests := []struct {
		name      string
		datastore string
		wantAddrs []string
		wantURLs  string
	}{
		{
			name:      "embedded: one member, highest free address",
			datastore: "{kind: embedded}",
			wantURLs:  "http://10.0.0.254:2379",
		},
		{
			name:      "cluster of 3 by default, below the datastore address, skipping hosts",
			datastore: "{kind: etcd-cluster}",
			wantAddrs: []string{"10.0.0.254/24", "10.0.0.252/24", "10.0.0.251/24"},
			wantURLs:  "http://10.0.0.254:2379,http://10.0.0.252:2379,http://10.0.0.251:2379",
		},
		{
			name:      "cluster with an address",
			datastore: "{kind: etcd-cluster, members: 2, address: 10.0.0.10/24}",
			wantAddrs: []string{"10.0.0.10/24", "10.0.0.9/24"},
			wantURLs:  "http://10.0.0.10:2379,http://10.0.0.9:2379",
		},
		{
			name:      "cluster with member addresses",
			datastore: "{kind: etcd-cluster, members: 2, address: 10.0.0.10/24, memberAddresses: [10.0.0.10/24, 10.0.0.20/24]}",
			wantAddrs: []string{"10.0.0.10/24", "10.0.0.20/24"},
			wantURLs:  "http://10.0.0.10:2379,http://10.0.0.20:2379",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "datastore: " + tt.datastore + "\nhosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.0.253/24}]\n"
			topo, err := ParseTopology("t.yaml", []byte(y))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(topo.Datastore.MemberAddresses, tt.wantAddrs) {
				t.Errorf("member addresses %v, want %v", topo.Datastore.MemberAddresses, tt.wantAddrs)
			}
			if got := EtcdEndpoints(topo); got != tt.wantURLs {
				t.Errorf("endpoints %s, want %s", got, tt.wantURLs)
			}
			// A running lab validates its topology again (add-workload):
			// the filled-in addresses must pass.
			if errs := topo.validate(); len(errs) > 0 {
				t.Errorf("validating again: %v", errs)
			}
		})
	}
}

func TestEtcdClusterTopologyInvalid(t *testing.T) {
	tests := []struct{ name, datastore, want string }{
		{"too many members", "{kind: etcd-cluster, members: 9}", "datastore.members: 9: an etcd cluster here has 1 to 7 members"},
		{"embedded with members", "{kind: embedded, members: 3}", "datastore.members: an embedded datastore has one member"},
		{"no room", "{kind: etcd-cluster, members: 3, address: 10.0.0.2/24}", "datastore.members: the fabric 10.0.0.0/24 has no room below 10.0.0.2 for 3 members"},
		{"address count", "{kind: etcd-cluster, members: 3, address: 10.0.0.10/24, memberAddresses: [10.0.0.10/24]}", "datastore.memberAddresses: 1 addresses for 3 members"},
		{"first is not the address", "{kind: etcd-cluster, members: 2, address: 10.0.0.10/24, memberAddresses: [10.0.0.11/24, 10.0.0.12/24]}", `datastore.memberAddresses[0]: "10.0.0.11/24" must be datastore.address`},
		{"member on a host", "{kind: etcd-cluster, members: 2, address: 10.0.0.10/24, memberAddresses: [10.0.0.10/24, 10.0.0.1/24]}", "datastore.memberAddresses[1]: 10.0.0.1 is already used by hosts[0].address"},
		{"member off the fabric", "{kind: etcd-cluster, members: 2, address: 10.0.0.10/24, memberAddresses: [10.0.0.10/24, 10.9.0.1/24]}", "datastore.memberAddresses[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "datastore: " + tt.datastore + "\nhosts: [{name: a, address: 10.0.0.1/24}]\n"
			_, err := ParseTopology("t.yaml", []byte(y))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
