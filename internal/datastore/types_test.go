package datastore_test

import (
	"testing"

	"github.com/servalnet/serval/internal/datastore"
)

func TestParseType(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", datastore.TypeEtcdV3},
		{"etcdv3", datastore.TypeEtcdV3},
		{"etcd", datastore.TypeEtcdV3},
		{"kubernetes", datastore.TypeKubernetes},
		{" Kubernetes ", datastore.TypeKubernetes},
		{"k8s", datastore.TypeKubernetes},
		{"consul", ""},
	} {
		got, err := datastore.ParseType(c.in)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("ParseType(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
