package datastore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// TestRealKinds runs a few round trips with the real API kinds, whose
// defaults and validation the test kinds only imitate.
func TestRealKinds(t *testing.T) {
	ctx := context.Background()
	s := datastore.NewMemory(nil)
	defer s.Close()

	pool := &api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "pool1"}, Spec: api.IPPoolSpec{CIDR: "10.1.0.0/16"}}
	v1, err := s.Create(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if p := v1.(*api.IPPool); p.Spec.BlockSize != 26 {
		t.Errorf("IPPool defaults not applied: blockSize %d, want 26", p.Spec.BlockSize)
	}
	if pool.Spec.BlockSize != 0 {
		t.Error("Create applied defaults to the caller's object")
	}
	v2, err := s.Update(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(ctx, v1)
	if !errors.Is(err, datastore.ErrConflict) || !strings.HasPrefix(err.Error(), `updating IPPool "pool1": resource was modified since it was read (resourceVersion mismatch)`) {
		t.Errorf("stale update: %v", err)
	}
	bad := *v2.(*api.IPPool)
	bad.Spec.CIDR = "10.1.0.0/99"
	var verr *api.ValidationError
	if _, err := s.Update(ctx, &bad); !errors.As(err, &verr) || !strings.Contains(err.Error(), "spec.cidr") {
		t.Errorf("invalid IPPool update: %v", err)
	}

	for _, wep := range []*api.WorkloadEndpoint{
		{ObjectMeta: api.ObjectMeta{Namespace: "prod", Name: "host1-k8s-db-eth0"}, Spec: api.WorkloadEndpointSpec{Node: "host1", Orchestrator: "k8s", Pod: "db", Endpoint: "eth0", InterfaceName: "cali0123456789a", IPNetworks: []string{"10.1.0.5/32"}}},
		{ObjectMeta: api.ObjectMeta{Namespace: "prod", Name: "host2-k8s-web-eth0"}, Spec: api.WorkloadEndpointSpec{Node: "host2", Orchestrator: "k8s", Pod: "web", Endpoint: "eth0", InterfaceName: "cali0123456789b", IPNetworks: []string{"10.1.0.6/32"}}},
	} {
		wep.Kind = "WorkloadEndpoint"
		if _, err := s.Create(ctx, wep); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.List(ctx, datastore.ListOptions{Kind: "WorkloadEndpoint", Namespace: "prod", FieldSelector: "spec.node=host1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 1 || res.Items[0].GetObjectMeta().Name != "host1-k8s-db-eth0" {
		t.Errorf("field selector on WorkloadEndpoint: %v", res.Items)
	}
}
