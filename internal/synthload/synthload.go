package synthload

import (
	"context"
	"fmt"
	"sync"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// RuleSelectors is how many distinct source selectors the policies' rules use.
const RuleSelectors = 50

// Spec is the size of the load.
type Spec struct {
	Node          string // the local node's name
	Local, Remote int    // workload endpoints on Node and on other hosts
	Policies      int
	Writers       int // concurrent datastore writers (default 16)
}

// Write creates the load in ds and returns the first failure, if any.
func Write(ctx context.Context, ds datastore.Interface, s Spec) error {
	writers := s.Writers
	if writers <= 0 {
		writers = 16
	}
	objs := make(chan api.Resource, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range objs {
				if _, err := ds.Create(ctx, o); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("creating %s: %w", api.KeyOf(o), err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < s.Local+s.Remote; i++ {
		node := s.Node
		if i >= s.Local {
			node = fmt.Sprintf("host%d", i%500)
		}
		objs <- Endpoint(i, node)
	}
	for i := 0; i < s.Policies; i++ {
		objs <- Policy(i, 0)
	}
	close(objs)
	wg.Wait()
	return firstErr
}

// Endpoint is the i-th workload endpoint, on node, with address
// 10.100.0.0/14 + i.
func Endpoint(i int, node string) *api.WorkloadEndpoint {
	pod := fmt.Sprintf("w%d", i)
	w := &api.WorkloadEndpoint{TypeMeta: api.TypeMeta{Kind: "WorkloadEndpoint"}}
	// The name is the endpoint's identifiers, as the API requires.
	w.Name, w.Namespace = fmt.Sprintf("%s-k8s-%s-eth0", node, pod), fmt.Sprintf("ns%d", i%20)
	w.Labels = map[string]string{"app": fmt.Sprintf("app%d", i%10), "role": fmt.Sprintf("r%d", i%RuleSelectors)}
	w.Spec = api.WorkloadEndpointSpec{Node: node, Orchestrator: "k8s", Pod: pod, Endpoint: "eth0",
		InterfaceName: fmt.Sprintf("calib%d", i), IPNetworks: []string{fmt.Sprintf("10.%d.%d.%d/32", 100+(i>>16)&0xff, (i>>8)&0xff, i&0xff)}}
	return w
}

// Policy is the i-th policy at a version: each version allows another
// destination port, so writing the next version is a real change.
func Policy(i, version int) *api.GlobalNetworkPolicy {
	p := &api.GlobalNetworkPolicy{TypeMeta: api.TypeMeta{Kind: "GlobalNetworkPolicy"}}
	p.Name = fmt.Sprintf("gnp%d", i)
	order := float64(i)
	proto := api.ProtocolFromString("TCP")
	p.Spec.Selector = fmt.Sprintf("app == 'app%d'", i%10)
	p.Spec.Order = &order
	p.Spec.Ingress = []api.Rule{{Action: api.Allow, Protocol: &proto,
		Source:      api.EntityRule{Selector: fmt.Sprintf("role == 'r%d'", i%RuleSelectors)},
		Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(1000 + (i+version)%100)}}}}
	p.SetDefaults()
	return p
}
