package datastore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
)

// BenchmarkEtcdListPages lists 100,000 workload endpoints
// (SERVAL_BENCH_ENDPOINTS to change) from an embedded etcd, page by page,
// at several page sizes: etcd counts the rest of the range on every
// page, so small pages cost the server more in total.
func BenchmarkEtcdListPages(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SERVAL_BENCH_ENDPOINTS")); err == nil {
		n = v
	}
	srv, err := embedetcd.Start(context.Background(), embedetcd.Config{DataDir: b.TempDir(), ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientURL()}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Written raw, many to a transaction: what is measured is the list.
	ctx := context.Background()
	var ops []clientv3.Op
	for i := range n {
		w := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint", APIVersion: api.APIVersion}}
		node, pod := fmt.Sprintf("host%d", i%500), fmt.Sprintf("w%d", i)
		w.Name, w.Namespace = fmt.Sprintf("%s-k8s-%s-eth0", node, pod), fmt.Sprintf("ns%d", i%20)
		w.Labels = map[string]string{"app": fmt.Sprintf("app%d", i%10), "role": fmt.Sprintf("r%d", i%50)}
		w.UID = fmt.Sprintf("4f1c2a3e-0000-4000-8000-%012d", i)
		w.Spec = api.WorkloadEndpointSpec{Node: node, Orchestrator: "k8s", Pod: pod, Endpoint: "eth0",
			InterfaceName: fmt.Sprintf("cali%011d", i), IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 100+(i>>16)&0xff, (i>>8)&0xff, i&0xff)}}
		w.SetDefaults()
		v, err := json.Marshal(w)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/workloadendpoints/%s/%s", datastore.DefaultPrefix, w.Namespace, w.Name), string(v)))
		if len(ops) == 100 || i == n-1 {
			if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	for _, size := range []int{500, 1000, 5000, 10000} {
		b.Run(fmt.Sprintf("page=%d", size), func(b *testing.B) {
			e, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}, ListPageSize: size})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			for b.Loop() {
				got := 0
				if _, err := e.ListPages(ctx, datastore.ListOptions{Kind: "WorkloadEndpoint"}, func(items []api.Resource, _ int64) error {
					got += len(items)
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("listed %d endpoints, want %d", got, n)
				}
			}
		})
	}
}
