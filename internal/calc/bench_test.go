package calc

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
)

// counter is a Callbacks that only counts.
type counter struct {
	sets, setMembers, deltaMembers, policies, endpoints int
}

func (c *counter) OnIPSetUpdate(s hoststate.IPSet) { c.sets++; c.setMembers += len(s.Members) }
func (c *counter) OnIPSetDelta(_ string, a, r []hoststate.IPSetMember) {
	c.deltaMembers += len(a) + len(r)
}
func (c *counter) OnIPSetRemove(string)                                {}
func (c *counter) OnPolicyUpdate(hoststate.Policy)                     { c.policies++ }
func (c *counter) OnPolicyRemove(hoststate.PolicyID)                   {}
func (c *counter) OnProfileUpdate(hoststate.Profile)                   {}
func (c *counter) OnProfileRemove(string)                              {}
func (c *counter) OnWorkloadEndpointUpdate(hoststate.WorkloadEndpoint) { c.endpoints++ }
func (c *counter) OnWorkloadEndpointRemove(hoststate.EndpointID)       {}
func (c *counter) OnHostEndpointUpdate(hoststate.HostEndpoint)         {}
func (c *counter) OnHostEndpointRemove(hoststate.EndpointID)           {}
func (c *counter) OnIPPoolUpdate(string, hoststate.IPPool)             {}
func (c *counter) OnIPPoolRemove(string)                               {}
func (c *counter) OnLocalBlockUpdate(netip.Prefix)                     {}
func (c *counter) OnLocalBlockRemove(netip.Prefix)                     {}
func (c *counter) OnConfigUpdate(hoststate.Config)                     {}
func (c *counter) OnInSync()                                           {}

func addr(i int) string {
	return fmt.Sprintf("10.%d.%d.%d/32", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

// scale builds a cluster: local and remote workloads spread over 20
// namespaces, with app labels (10 values, what policies select) and role
// labels (what rule selectors pick); policies whose rules use
// ruleSelectors distinct selectors, one in ten a NetworkPolicy.
func scale(local, remote, policies, ruleSelectors int) []datastore.Update {
	var objs []any
	for i := 0; i < local+remote; i++ {
		node := host
		if i >= local {
			node = fmt.Sprintf("host%d", 2+i%500)
		}
		lbl := fmt.Sprintf("app=app%d,role=r%d,zone=z%d", i%10, i%ruleSelectors, i%3)
		objs = append(objs, wep(fmt.Sprintf("ns%d", i%20), fmt.Sprintf("w%d", i), node, lbl, addr(i)))
	}
	for i := 0; i < policies; i++ {
		rule := api.Rule{Action: api.Allow, Protocol: proto("TCP"),
			Source:      api.EntityRule{Selector: fmt.Sprintf("role == 'r%d'", i%ruleSelectors)},
			Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(1000 + i%100)}}}
		sel := fmt.Sprintf("app == 'app%d'", i%10)
		if i%10 == 9 {
			objs = append(objs, np(fmt.Sprintf("ns%d", i%20), fmt.Sprintf("np%d", i), sel,
				func(s *api.NetworkPolicySpec) { s.Order = ptr(float64(i)); s.Ingress = []api.Rule{rule} }))
			continue
		}
		objs = append(objs, gnp(fmt.Sprintf("gnp%d", i), sel,
			func(s *api.GlobalNetworkPolicySpec) { s.Order = ptr(float64(i)); s.Ingress = []api.Rule{rule} }))
	}
	return toUpdates(objs)
}

func syncGraph(us []datastore.Update, cb hoststate.Callbacks) *Graph {
	g := New(host, cb, nil)
	g.OnStatus(datastore.ResyncInProgress)
	g.OnUpdates(us)
	g.OnStatus(datastore.InSync)
	return g
}

// (a) 100 local endpoints, 1,000 global policies, 50 distinct rule
// selectors: the whole initial sync.
func BenchmarkInitialSync100x1000(b *testing.B) {
	us := scale(100, 0, 1000, 50)
	for i := range us {
		if p, ok := us[i].Object.(*api.NetworkPolicy); ok { // all global, as specified
			g := gnp(p.Name, p.Spec.Selector, func(s *api.GlobalNetworkPolicySpec) { s.Order, s.Ingress = p.Spec.Order, p.Spec.Ingress })
			us[i] = datastore.Update{Type: datastore.Added, Key: api.KeyOf(g), Object: g}
		}
	}
	b.ReportAllocs()
	var c counter
	for b.Loop() {
		c = counter{}
		syncGraph(us, &c)
	}
	b.ReportMetric(float64(c.policies), "policies")
	b.ReportMetric(float64(c.sets), "sets")
}

// (b) One policy changed after that sync.
func BenchmarkPolicyChange100x1000(b *testing.B) {
	us := scale(100, 0, 1000, 50)
	c := &counter{}
	g := syncGraph(us, c)
	versions := [2]*api.GlobalNetworkPolicy{
		gnp("gnp0", "app == 'app0'", ingress(allowFrom("role == 'r1'"))),
		gnp("gnp0", "app == 'app0'", ingress(allowFrom("role == 'r2'"))),
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p := versions[n%2]
		n++
		g.OnUpdates([]datastore.Update{{Type: datastore.Modified, Key: api.KeyOf(p), Object: p}})
	}
}

// (c) 250 local and 100,000 remote endpoints, 2,000 policies: initial
// sync time, allocation, and the heap the graph keeps.
func BenchmarkInitialSync250Local100kRemote2000(b *testing.B) {
	us := scale(250, 100_000, 2000, 200)
	b.ReportAllocs()
	var g *Graph
	var c counter
	for b.Loop() {
		b.StopTimer()
		g = nil
		runtime.GC()
		c = counter{}
		b.StartTimer()
		g = syncGraph(us, &c)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(c.setMembers), "set-members")
	runtime.KeepAlive(g)
}

// (d) One remote endpoint's label change at that scale: how many set
// members change (it moves between two rule-selector sets).
func BenchmarkEndpointLabelChange(b *testing.B) {
	us := scale(250, 100_000, 2000, 200)
	c := &counter{}
	g := syncGraph(us, c)
	versions := [2]*api.WorkloadEndpoint{
		wep("ns5", "w1005", "host2", "app=app5,role=r5,zone=z0", addr(1005)),
		wep("ns5", "w1005", "host2", "app=app5,role=r6,zone=z0", addr(1005)),
	}
	c.deltaMembers = 0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		w := versions[(n+1)%2]
		n++
		g.OnUpdates([]datastore.Update{{Type: datastore.Modified, Key: api.KeyOf(w), Object: w}})
	}
	b.ReportMetric(float64(c.deltaMembers)/float64(n), "members-changed/op")
}
