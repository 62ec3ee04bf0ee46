package calc

import (
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/datastore"

	"github.com/servalnet/serval/internal/api"
)

const (
	nsProd = `projectcalico.org/namespace == "prod"`
)

// allowDB is a policy used by many cases: ingress from role=db to app=web.
var allowDB = gnp("allow-db", "app == 'web'", ingress(allowFrom("role == 'db'")))

func TestGraph(t *testing.T) {
	cases := []struct {
		name    string
		initial []any
		steps   [][]any
		all     bool // keep the config and insync lines
		want    []string
	}{
		{
			name:    "local workload without policy",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32")},
			want:    []string{"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]"},
		},
		{
			name:    "remote workload is not rendered",
			initial: []any{wep("prod", "a", "host2", "app=web", "10.0.0.1/32")},
			want:    nil,
		},
		{
			name:    "dual-stack workload, address without prefix length",
			initial: []any{wep("prod", "a", host, "", "10.0.0.1", "fd00::1/128")},
			want:    []string{"wep prod/a if=calia v4=[10.0.0.1/32] v6=[fd00::1/128] tiers=[] profiles=[]"},
		},
		{
			name:    "local host endpoint",
			initial: []any{hep("h1-eth0", host, "role=node", "eth0", "192.168.1.1")},
			want:    []string{"hep h1-eth0 if=eth0 ips=[192.168.1.1] tiers=[] untracked=[] prednat=[] forward=[] profiles=[]"},
		},
		{
			name:    "remote host endpoint is not rendered",
			initial: []any{hep("h2-eth0", "host2", "role=node", "eth0", "192.168.1.2")},
		},
		{
			name: "global policy selects a local workload",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("p1", "app == 'web'", ingress(api.Rule{Action: api.Allow}))},
			want: []string{
				"policy default/GlobalNetworkPolicy/p1 in=[Allow] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p1 out:}] profiles=[]",
			},
		},
		{
			name: "policy selecting only remote workloads is not rendered",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("prod", "b", "host2", "app=db", "10.0.0.2/32"),
				gnp("p1", "app == 'db'", ingress(allowFrom("role == 'x'")))},
			want: []string{"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]"},
		},
		{
			name: "rule selector set holds local and remote members",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("prod", "db1", "host2", "role=db", "10.0.1.1/32"), wep("dev", "db2", "host3", "role=db", "10.0.1.2/32", "fd00::2"),
				wep("prod", "other", "host2", "role=fe", "10.0.1.3/32"), allowDB},
			want: []string{
				`policy default/GlobalNetworkPolicy/allow-db in=[Allow srcsets=s:role == "db"] out=[]`,
				`set s:role == "db" = [10.0.1.1/32 10.0.1.2/32 fd00::2/128]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:allow-db out:}] profiles=[]",
			},
		},
		{
			name: "NetworkPolicy applies only in its namespace",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("dev", "b", host, "app=web", "10.0.0.2/32"),
				np("prod", "p1", "app == 'web'", npIngress(api.Rule{Action: api.Allow}))},
			want: []string{
				"policy default/NetworkPolicy/prod/p1 in=[Allow] out=[]",
				"wep dev/b if=calib v4=[10.0.0.2/32] v6=[] tiers=[] profiles=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p1 out:}] profiles=[]",
			},
		},
		{
			name: "NetworkPolicy rule selectors match its own namespace only",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("prod", "db1", "host2", "role=db", "10.0.1.1/32"), wep("dev", "db2", "host2", "role=db", "10.0.1.2/32"),
				np("prod", "p1", "app == 'web'", npIngress(allowFrom("role == 'db'")))},
			want: []string{
				`policy default/NetworkPolicy/prod/p1 in=[Allow srcsets=s:(` + nsProd + ` && role == "db")] out=[]`,
				`set s:(` + nsProd + ` && role == "db") = [10.0.1.1/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p1 out:}] profiles=[]",
			},
		},
		{
			name: "namespaceSelector picks namespaces by their kns profile labels",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				profileRes("kns.prod", "env=prod", nil), profileRes("kns.prod2", "env=prod", nil), profileRes("kns.dev", "env=dev", nil),
				wep("prod", "db1", "host2", "role=db", "10.0.1.1/32"), wep("prod2", "db2", "host2", "role=db", "10.0.1.2/32"),
				wep("dev", "db3", "host2", "role=db", "10.0.1.3/32"), wep("none", "db4", "host2", "role=db", "10.0.1.4/32"),
				np("prod", "p1", "", npIngress(api.Rule{Action: api.Allow, Source: api.EntityRule{Selector: "role == 'db'", NamespaceSelector: "env == 'prod'"}}))},
			want: []string{
				`policy default/NetworkPolicy/prod/p1 in=[Allow srcsets=s:(pcns.env == "prod" && role == "db")] out=[]`,
				`set s:(pcns.env == "prod" && role == "db") = [10.0.1.1/32 10.0.1.2/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p1 out:}] profiles=[]",
			},
		},
		{
			name: "namespaceSelector all() means any namespace",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("dev", "db3", "host2", "role=db", "10.0.1.3/32"), hep("h2", "host2", "role=db", "eth0", "192.168.0.2"),
				np("prod", "p1", "", npIngress(api.Rule{Action: api.Allow, Source: api.EntityRule{Selector: "role == 'db'", NamespaceSelector: "all()"}}))},
			want: []string{
				`policy default/NetworkPolicy/prod/p1 in=[Allow srcsets=s:(has(projectcalico.org/namespace) && role == "db")] out=[]`,
				`set s:(has(projectcalico.org/namespace) && role == "db") = [10.0.1.3/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p1 out:}] profiles=[]",
			},
		},
		{
			name: "namespaceSelector global() matches global network sets and host endpoints",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("dev", "db3", "host2", "role=db", "10.0.1.3/32"), hep("h2", "host2", "role=db", "eth0", "192.168.0.2"),
				netset("", "ext", "role=db", "203.0.113.0/24"), netset("prod", "pext", "role=db", "198.51.100.0/24"),
				np("prod", "p1", "", npIngress(api.Rule{Action: api.Allow, Source: api.EntityRule{Selector: "role == 'db'", NamespaceSelector: "global()"}}))},
			want: []string{
				`policy default/NetworkPolicy/prod/p1 in=[Allow srcsets=s:(!has(projectcalico.org/namespace) && role == "db")] out=[]`,
				`set s:(!has(projectcalico.org/namespace) && role == "db") = [192.168.0.2/32 203.0.113.0/24]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p1 out:}] profiles=[]",
			},
		},
		{
			name: "tiers by order, default tier at 1000000",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				tierRes("security", 100, api.Deny), tierRes("late", 2_000_000, api.Pass), tierRes("also100", 100, api.Deny),
				gnp("d1", "all()", ingress(api.Rule{Action: api.Allow})),
				gnp("s1", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Tier = "security"; s.Ingress = []api.Rule{{Action: api.Pass}} }),
				gnp("a1", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Tier = "also100"; s.Ingress = []api.Rule{{Action: api.Pass}} }),
				gnp("l1", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Tier = "late"; s.Ingress = []api.Rule{{Action: api.Deny}} })},
			want: []string{
				"policy also100/GlobalNetworkPolicy/a1 in=[Pass] out=[]",
				"policy default/GlobalNetworkPolicy/d1 in=[Allow] out=[]",
				"policy late/GlobalNetworkPolicy/l1 in=[Deny] out=[]",
				"policy security/GlobalNetworkPolicy/s1 in=[Pass] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[also100(Deny){in:a1 out:} security(Deny){in:s1 out:} default(Deny){in:d1 out:} late(Pass){in:l1 out:}] profiles=[]",
			},
		},
		{
			name: "policy in a tier that does not exist is not active until the tier is created",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("s1", "all()", func(s *api.GlobalNetworkPolicySpec) {
					s.Tier = "security"
					s.Ingress = []api.Rule{allowFrom("role == 'x'")}
				})},
			steps: [][]any{{tierRes("security", 10, api.Deny)}},
			want: []string{
				`policy security/GlobalNetworkPolicy/s1 in=[Allow srcsets=s:role == "x"] out=[]`,
				`set s:role == "x" = []`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[security(Deny){in:s1 out:}] profiles=[]",
			},
		},
		{
			name: "deleting a tier deactivates its policies",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), tierRes("security", 10, api.Deny),
				gnp("s1", "all()", func(s *api.GlobalNetworkPolicySpec) {
					s.Tier = "security"
					s.Ingress = []api.Rule{allowFrom("role == 'x'")}
				})},
			steps: [][]any{{del(tierRes("security", 10, api.Deny))}},
			want: []string{
				"policy-remove security/GlobalNetworkPolicy/s1",
				`set-remove s:role == "x"`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]",
			},
		},
		{
			name: "policy order, ties by name, unset order last",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("z", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Order = ptr(10.0); s.Ingress = []api.Rule{{Action: api.Allow}} }),
				gnp("b", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Order = ptr(20.0); s.Ingress = []api.Rule{{Action: api.Allow}} }),
				gnp("a", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Order = ptr(20.0); s.Ingress = []api.Rule{{Action: api.Allow}} }),
				gnp("first-by-name-but-unordered", "all()", ingress(api.Rule{Action: api.Allow})),
				np("prod", "n", "all()", func(s *api.NetworkPolicySpec) { s.Order = ptr(15.0); s.Ingress = []api.Rule{{Action: api.Allow}} })},
			want: []string{
				"policy default/GlobalNetworkPolicy/a in=[Allow] out=[]",
				"policy default/GlobalNetworkPolicy/b in=[Allow] out=[]",
				"policy default/GlobalNetworkPolicy/first-by-name-but-unordered in=[Allow] out=[]",
				"policy default/GlobalNetworkPolicy/z in=[Allow] out=[]",
				"policy default/NetworkPolicy/prod/n in=[Allow] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:z,prod/n,a,b,first-by-name-but-unordered out:}] profiles=[]",
			},
		},
		{
			name: "policy types: egress only, and rules of a type not listed are dropped",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("eg", "all()", func(s *api.GlobalNetworkPolicySpec) { s.Egress = []api.Rule{{Action: api.Allow}} }),
				gnp("inonly", "all()", func(s *api.GlobalNetworkPolicySpec) {
					s.Types = []api.PolicyType{api.PolicyTypeIngress}
					s.Ingress = []api.Rule{{Action: api.Deny}}
					s.Egress = []api.Rule{{Action: api.Allow}}
				}),
				gnp("both", "all()", func(s *api.GlobalNetworkPolicySpec) {
					s.Types = []api.PolicyType{api.PolicyTypeIngress, api.PolicyTypeEgress}
				})},
			want: []string{
				"policy default/GlobalNetworkPolicy/both in=[] out=[]",
				"policy default/GlobalNetworkPolicy/eg in=[] out=[Allow]",
				"policy default/GlobalNetworkPolicy/inonly in=[Deny] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:both,inonly out:both,eg}] profiles=[]",
			},
		},
		{
			name: "Pass and Log actions",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("p", "all()", ingress(api.Rule{Action: api.Log}, api.Rule{Action: api.Pass, Protocol: proto("TCP")}))},
			want: []string{
				"policy default/GlobalNetworkPolicy/p in=[Log; Pass proto=6] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p out:}] profiles=[]",
			},
		},
		{
			name: "named port with a selector becomes a named-port set",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				mod(wep("prod", "db1", "host2", "role=db", "10.0.1.1/32", "fd00::1"), func(w *api.WorkloadEndpoint) {
					w.Spec.Ports = []api.WorkloadEndpointPort{{Name: "pg", Protocol: api.ProtocolFromString("TCP"), Port: 5432},
						{Name: "pg", Protocol: api.ProtocolFromString("UDP"), Port: 5433}}
				}),
				wep("prod", "db2", "host2", "role=db", "10.0.1.2/32"), // no such port
				gnp("p", "all()", func(s *api.GlobalNetworkPolicySpec) {
					s.Egress = []api.Rule{{Action: api.Allow, Protocol: proto("TCP"),
						Destination: api.EntityRule{Selector: "role == 'db'", Ports: []api.Port{api.NamedPort("pg")}}}}
				})},
			want: []string{
				`policy default/GlobalNetworkPolicy/p in=[] out=[Allow proto=6 dnamed=n:role == "db":6:pg]`,
				`set n:role == "db":6:pg = [10.0.1.1/32,6:5432 fd00::1/128,6:5432]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in: out:p}] profiles=[]",
			},
		},
		{
			name: "named and numeric ports together keep the selector set; UDP named port; no selector is all()",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				mod(wep("prod", "dns", "host2", "role=dns", "10.0.1.1/32"), func(w *api.WorkloadEndpoint) {
					w.Spec.Ports = []api.WorkloadEndpointPort{{Name: "dns", Protocol: api.ProtocolFromString("UDP"), Port: 53}}
				}),
				gnp("p", "all()", func(s *api.GlobalNetworkPolicySpec) {
					s.Egress = []api.Rule{
						{Action: api.Allow, Protocol: proto("UDP"), Destination: api.EntityRule{Selector: "role == 'dns'",
							Ports: []api.Port{api.NamedPort("dns"), api.SinglePort(5353)}}},
						{Action: api.Allow, Protocol: proto("UDP"), Destination: api.EntityRule{NotPorts: []api.Port{api.NamedPort("dns")}}},
					}
				})},
			want: []string{
				`policy default/GlobalNetworkPolicy/p in=[] out=[Allow proto=17 dstsets=s:role == "dns" dport=5353 dnamed=n:role == "dns":17:dns; Allow proto=17 !dnamed=n:all():17:dns]`,
				`set n:all():17:dns = [10.0.1.1/32,17:53]`,
				`set n:role == "dns":17:dns = [10.0.1.1/32,17:53]`,
				`set s:role == "dns" = [10.0.1.1/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in: out:p}] profiles=[]",
			},
		},
		{
			name: "nets, notNets, port ranges, notPorts",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("p", "all()", ingress(api.Rule{Action: api.Allow, Protocol: proto("TCP"),
					Source:      api.EntityRule{Nets: []string{"10.1.0.0/16", "10.2.3.4"}, NotNets: []string{"10.1.2.0/24"}, Ports: []api.Port{api.PortRange(1024, 2048)}},
					Destination: api.EntityRule{Nets: []string{"10.0.0.9/8"}, NotPorts: []api.Port{api.SinglePort(22)}, Ports: []api.Port{api.SinglePort(80), api.SinglePort(443)}},
				}))},
			want: []string{
				"policy default/GlobalNetworkPolicy/p in=[Allow proto=6 src=10.1.0.0/16,10.2.3.4/32 !src=10.1.2.0/24 dst=10.0.0.0/8 sport=1024-2048 dport=80,443 !dport=22] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p out:}] profiles=[]",
			},
		},
		{
			name: "icmp, notICMP, protocol numbers and notProtocol, ipVersion",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("p", "all()", ingress(
					api.Rule{Action: api.Allow, Protocol: proto("ICMP"), IPVersion: ptr(4), ICMP: &api.ICMPFields{Type: ptr(8), Code: ptr(0)}},
					api.Rule{Action: api.Allow, Protocol: proto("ICMPv6"), IPVersion: ptr(6), NotICMP: &api.ICMPFields{Type: ptr(128)}},
					api.Rule{Action: api.Allow, Protocol: proto("132")},
					api.Rule{Action: api.Deny, NotProtocol: proto("UDPLite"), IPVersion: ptr(6)},
				))},
			want: []string{
				"policy default/GlobalNetworkPolicy/p in=[Allow ipv=4 proto=1 icmp=8 code=0; Allow ipv=6 proto=58 !icmp=128; Allow proto=132; Deny ipv=6 !proto=136] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p out:}] profiles=[]",
			},
		},
		{
			name: "profiles in the endpoint's order; a missing profile denies",
			initial: []any{mod(wep("prod", "a", host, "", "10.0.0.1/32"), func(w *api.WorkloadEndpoint) { w.Spec.Profiles = []string{"p2", "p1", "ghost"} }),
				profileRes("p1", "", func(s *api.ProfileSpec) { s.Ingress = []api.Rule{allowFrom("role == 'x'")} }),
				profileRes("p2", "", func(s *api.ProfileSpec) { s.Egress = []api.Rule{{Action: api.Allow}} }),
				profileRes("unused", "", func(s *api.ProfileSpec) { s.Egress = []api.Rule{{Action: api.Allow}} })},
			want: []string{
				"profile ghost in=[Deny] out=[Deny]",
				`profile p1 in=[Allow srcsets=s:role == "x"] out=[]`,
				"profile p2 in=[] out=[Allow]",
				`set s:role == "x" = []`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[p2,p1,ghost]",
			},
		},
		{
			name: "inherited profile labels are matched; the endpoint's own labels win",
			initial: []any{mod(wep("prod", "a", host, "tier=own", "10.0.0.1/32"), func(w *api.WorkloadEndpoint) { w.Spec.Profiles = []string{"web"} }),
				profileRes("web", "app=web,tier=inherited", nil),
				gnp("p-app", "app == 'web'", ingress(api.Rule{Action: api.Allow})),
				gnp("p-inh", "tier == 'inherited'", ingress(api.Rule{Action: api.Allow})),
				gnp("p-own", "tier == 'own'", ingress(api.Rule{Action: api.Allow}))},
			want: []string{
				"policy default/GlobalNetworkPolicy/p-app in=[Allow] out=[]",
				"policy default/GlobalNetworkPolicy/p-own in=[Allow] out=[]",
				"profile web in=[] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p-app,p-own out:}] profiles=[web]",
			},
		},
		{
			name: "implicit namespace and orchestrator labels cannot be overridden",
			initial: []any{wep("prod", "a", host, "projectcalico.org/namespace=dev", "10.0.0.1/32"),
				gnp("p", "projectcalico.org/namespace == 'prod' && projectcalico.org/orchestrator == 'k8s'", ingress(api.Rule{Action: api.Allow}))},
			want: []string{
				"policy default/GlobalNetworkPolicy/p in=[Allow] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p out:}] profiles=[]",
			},
		},
		{
			name: "label change moves a remote endpoint between sets: deltas only",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("prod", "x", "host2", "role=db", "10.0.1.1/32"), wep("prod", "y", "host2", "role=db", "10.0.1.2/32"),
				wep("prod", "z", "host2", "role=fe", "10.0.1.3/32"),
				gnp("p", "app == 'web'", ingress(allowFrom("role == 'db'"), allowFrom("role == 'fe'")))},
			steps: [][]any{{wep("prod", "x", "host2", "role=fe", "10.0.1.1/32")}},
			want: []string{
				`set s:role == "db" +[] -[10.0.1.1/32]`,
				`set s:role == "fe" +[10.0.1.1/32] -[]`,
			},
		},
		{
			name: "address change: deltas only; unrelated label change: nothing",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("prod", "x", "host2", "role=db", "10.0.1.1/32"), wep("prod", "y", "host2", "role=db", "10.0.1.2/32"),
				gnp("p", "app == 'web'", ingress(allowFrom("role == 'db'")))},
			steps: [][]any{{wep("prod", "x", "host2", "role=db", "10.0.1.9/32"), wep("prod", "y", "host2", "role=db,color=red", "10.0.1.2/32")}},
			want:  []string{`set s:role == "db" +[10.0.1.9/32] -[10.0.1.1/32]`},
		},
		{
			name: "two entities with the same address: the member stays while one holds it",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				wep("prod", "x", "host2", "role=db", "10.0.1.1/32"), netset("", "n", "role=db", "10.0.1.1/32"),
				gnp("p", "app == 'web'", ingress(allowFrom("role == 'db'")))},
			steps: [][]any{{del(wep("prod", "x", "host2", "role=db", "10.0.1.1/32"))}},
			want:  nil,
		},
		{
			name: "local endpoint label change: policy stops applying, its set goes",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("prod", "x", "host2", "role=db", "10.0.1.1/32"),
				gnp("p", "app == 'web'", ingress(allowFrom("role == 'db'")))},
			steps: [][]any{{wep("prod", "a", host, "app=other", "10.0.0.1/32")}},
			want: []string{
				"policy-remove default/GlobalNetworkPolicy/p",
				`set-remove s:role == "db"`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]",
			},
		},
		{
			name:    "policy deleted",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), allowDB},
			steps:   [][]any{{del(allowDB)}},
			want: []string{
				"policy-remove default/GlobalNetworkPolicy/allow-db",
				`set-remove s:role == "db"`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]",
			},
		},
		{
			name:    "policy rule change swaps sets",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("prod", "x", "host2", "role=fe", "10.0.1.1/32"), allowDB},
			steps:   [][]any{{gnp("allow-db", "app == 'web'", ingress(allowFrom("role == 'fe'")))}},
			want: []string{
				`policy default/GlobalNetworkPolicy/allow-db in=[Allow srcsets=s:role == "fe"] out=[]`,
				`set s:role == "fe" = [10.0.1.1/32]`,
				`set-remove s:role == "db"`,
			},
		},
		{
			name:    "policy moves to another tier: new ID sent, old removed",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), tierRes("t1", 5, api.Deny), gnp("p", "all()", ingress(api.Rule{Action: api.Allow}))},
			steps: [][]any{{gnp("p", "all()", func(s *api.GlobalNetworkPolicySpec) {
				s.Tier = "t1"
				s.Ingress = []api.Rule{{Action: api.Allow}}
			})}},
			want: []string{
				"policy t1/GlobalNetworkPolicy/p in=[Allow] out=[]",
				"policy-remove default/GlobalNetworkPolicy/p",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[t1(Deny){in:p out:}] profiles=[]",
			},
		},
		{
			name: "network sets, global and namespaced, are set members",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				netset("", "g", "role=ext", "203.0.113.7/24", "2001:db8::/32"), netset("prod", "n1", "role=ext", "198.51.100.0/24"),
				netset("dev", "n2", "role=ext", "192.0.2.0/24"),
				gnp("p", "app == 'web'", ingress(allowFrom("role == 'ext'"))),
				np("prod", "q", "app == 'web'", npIngress(allowFrom("role == 'ext'")))},
			want: []string{
				`policy default/GlobalNetworkPolicy/p in=[Allow srcsets=s:role == "ext"] out=[]`,
				`policy default/NetworkPolicy/prod/q in=[Allow srcsets=s:(` + nsProd + ` && role == "ext")] out=[]`,
				`set s:(` + nsProd + ` && role == "ext") = [198.51.100.0/24]`,
				`set s:role == "ext" = [192.0.2.0/24 198.51.100.0/24 203.0.113.0/24 2001:db8::/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p,prod/q out:}] profiles=[]",
			},
		},
		{
			name: "host endpoint: normal, untracked, preDNAT and forward tiers",
			initial: []any{hep("h1", host, "role=node", "eth0", "192.168.1.1"),
				wep("prod", "a", host, "role=node", "10.0.0.1/32"),
				gnp("normal", "role == 'node'", ingress(api.Rule{Action: api.Allow})),
				gnp("fwd", "role == 'node'", func(s *api.GlobalNetworkPolicySpec) {
					s.ApplyOnForward = true
					s.Ingress = []api.Rule{{Action: api.Allow}}
				}),
				gnp("raw", "role == 'node'", func(s *api.GlobalNetworkPolicySpec) {
					s.DoNotTrack, s.ApplyOnForward = true, true
					s.Ingress = []api.Rule{{Action: api.Allow}}
				}),
				gnp("dnat", "role == 'node'", func(s *api.GlobalNetworkPolicySpec) {
					s.PreDNAT, s.ApplyOnForward = true, true
					s.Ingress = []api.Rule{{Action: api.Deny}}
				})},
			want: []string{
				"hep h1 if=eth0 ips=[192.168.1.1] tiers=[default(Deny){in:fwd,normal out:}] untracked=[default(Deny){in:raw out:}] prednat=[default(Deny){in:dnat out:}] forward=[default(Deny){in:fwd out:}] profiles=[]",
				"policy default/GlobalNetworkPolicy/dnat in=[Deny] out=[] prednat forward",
				"policy default/GlobalNetworkPolicy/fwd in=[Allow] out=[] forward",
				"policy default/GlobalNetworkPolicy/normal in=[Allow] out=[]",
				"policy default/GlobalNetworkPolicy/raw in=[Allow] out=[] untracked forward",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:fwd,normal out:}] profiles=[]",
			},
		},
		{
			name: "preDNAT policy selecting only workloads is not active",
			initial: []any{wep("prod", "a", host, "role=node", "10.0.0.1/32"),
				gnp("dnat", "role == 'node'", func(s *api.GlobalNetworkPolicySpec) {
					s.PreDNAT, s.ApplyOnForward = true, true
					s.Ingress = []api.Rule{allowFrom("x == 'y'")}
				})},
			want: []string{"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]"},
		},
		{
			name: "IP pools: added, changed, removed",
			initial: []any{&api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "p1"}, Spec: api.IPPoolSpec{CIDR: "10.65.0.0/16", NATOutgoing: true}},
				&api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "p2"}, Spec: api.IPPoolSpec{CIDR: "fd00:65::/64"}}},
			steps: [][]any{{
				&api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "p1"}, Spec: api.IPPoolSpec{CIDR: "10.65.0.0/16", NATOutgoing: true, Disabled: true}},
				del(&api.IPPool{TypeMeta: api.TypeMeta{Kind: "IPPool"}, ObjectMeta: api.ObjectMeta{Name: "p2"}, Spec: api.IPPoolSpec{CIDR: "fd00:65::/64"}}),
			}},
			want: []string{"pool p1 10.65.0.0/16 nat=true disabled=true", "pool-remove p2"},
		},
		{
			name:    "FelixConfiguration defaults",
			initial: nil,
			all:     true,
			want: []string{
				"config prefixes=cali toHost=Drop in=6:22,17:68,6:179,6:2379,6:2380,6:5473,6:6443,6:6666,6:6667 out=17:53,17:67,6:179,6:2379,6:2380,6:5473,6:6443,6:6666,6:6667 log=calico-packet",
				"insync",
			},
		},
		{
			name: "FelixConfiguration: node-specific fields win over default; other nodes ignored",
			initial: []any{
				felixCfg("default", func(s *api.FelixConfigurationSpec) {
					s.InterfacePrefix, s.DefaultEndpointToHostAction, s.LogPrefix = "cali,tap", "Accept", "dflt"
					s.FailsafeInboundHostPorts = &[]api.ProtoPort{{Protocol: "TCP", Port: 22}}
				}),
				felixCfg("node."+host, func(s *api.FelixConfigurationSpec) {
					s.DefaultEndpointToHostAction = "Return"
					s.FailsafeOutboundHostPorts = &[]api.ProtoPort{{Protocol: "udp", Port: 53, Net: "10.0.0.0/8"}}
				}),
				felixCfg("node.host2", func(s *api.FelixConfigurationSpec) { s.LogPrefix = "other" }),
			},
			all: true,
			want: []string{
				"config prefixes=cali,tap toHost=Return in=6:22 out=17:53@10.0.0.0/8 log=dflt",
				"insync",
			},
		},
		{
			name:    "FelixConfiguration change after sync, then no-op change sends nothing",
			initial: nil,
			steps: [][]any{
				{felixCfg("default", func(s *api.FelixConfigurationSpec) { s.FailsafeInboundHostPorts = &[]api.ProtoPort{} })},
				{felixCfg("node.host2", func(s *api.FelixConfigurationSpec) { s.LogPrefix = "x" })},
			},
			all:  true,
			want: nil,
		},
		{
			name: "bad selector in a stored policy is skipped; a bad rule selector drops that rule",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				gnp("bad", "app == ", ingress(api.Rule{Action: api.Deny})),
				gnp("badrule", "all()", ingress(allowFrom("role === 'x'"), api.Rule{Action: api.Deny}))},
			want: []string{
				"policy default/GlobalNetworkPolicy/badrule in=[Deny] out=[]",
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:badrule out:}] profiles=[]",
			},
		},
		{
			name: "notSelector alone in a NetworkPolicy: namespace set minus the notSelector",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("prod", "b", "host2", "role=bad", "10.0.1.1/32"),
				wep("prod", "c", "host2", "role=good", "10.0.1.2/32"), wep("dev", "d", "host2", "role=good", "10.0.1.3/32"),
				np("prod", "p", "", npIngress(api.Rule{Action: api.Allow, Source: api.EntityRule{NotSelector: "role == 'bad'"}}))},
			want: []string{
				`policy default/NetworkPolicy/prod/p in=[Allow srcsets=s:(` + nsProd + ` && !role == "bad")] out=[]`,
				`set s:(` + nsProd + ` && !role == "bad") = [10.0.0.1/32 10.0.1.2/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p out:}] profiles=[]",
			},
		},
		{
			name: "notSelector alone in a global policy is a negated set",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("prod", "b", "host2", "role=bad", "10.0.1.1/32"),
				gnp("p", "", ingress(api.Rule{Action: api.Allow, Source: api.EntityRule{NotSelector: "role == 'bad'"}}))},
			want: []string{
				`policy default/GlobalNetworkPolicy/p in=[Allow !srcsets=s:role == "bad"] out=[]`,
				`set s:role == "bad" = [10.0.1.1/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:p out:}] profiles=[]",
			},
		},
		{
			name: "serviceAccounts by name and by selector over ksa profile labels",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				mod(wep("prod", "b", "host2", "", "10.0.1.1/32"), func(w *api.WorkloadEndpoint) { w.Spec.ServiceAccountName = "api" }),
				mod(wep("prod", "c", "host2", "", "10.0.1.2/32"), func(w *api.WorkloadEndpoint) { w.Spec.ServiceAccountName = "batch" }),
				profileRes("ksa.prod.batch", "team=data", nil),
				np("prod", "p", "", npIngress(
					api.Rule{Action: api.Allow, Source: api.EntityRule{ServiceAccounts: &api.ServiceAccountMatch{Names: []string{"api", "web"}}}},
					api.Rule{Action: api.Allow, Source: api.EntityRule{ServiceAccounts: &api.ServiceAccountMatch{Selector: "team == 'data'"}}},
				))},
			want: []string{
				`policy default/NetworkPolicy/prod/p in=[Allow srcsets=s:(` + nsProd + ` && projectcalico.org/serviceaccount in {"api", "web"}); Allow srcsets=s:(` + nsProd + ` && pcsa.team == "data")] out=[]`,
				`set s:(` + nsProd + ` && pcsa.team == "data") = [10.0.1.2/32]`,
				`set s:(` + nsProd + ` && projectcalico.org/serviceaccount in {"api", "web"}) = [10.0.1.1/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p out:}] profiles=[]",
			},
		},
		{
			name: "namespace labels change: the namespace's endpoints move between sets",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), profileRes("kns.dev", "env=dev", nil),
				wep("dev", "db", "host2", "role=db", "10.0.1.1/32"),
				np("prod", "p", "", npIngress(api.Rule{Action: api.Allow, Source: api.EntityRule{Selector: "role == 'db'", NamespaceSelector: "env == 'prod'"}}))},
			steps: [][]any{{profileRes("kns.dev", "env=prod", nil)}},
			want:  []string{`set s:(pcns.env == "prod" && role == "db") +[10.0.1.1/32] -[]`},
		},
		{
			name: "namespaceSelector on the namespace's name label",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("dev", "db", "host2", "role=db", "10.0.1.1/32"),
				np("prod", "p", "", npIngress(api.Rule{Action: api.Allow, Source: api.EntityRule{NamespaceSelector: "projectcalico.org/name == 'dev'"}}))},
			want: []string{
				`policy default/NetworkPolicy/prod/p in=[Allow srcsets=s:pcns.projectcalico.org/name == "dev"] out=[]`,
				`set s:pcns.projectcalico.org/name == "dev" = [10.0.1.1/32]`,
				"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[default(Deny){in:prod/p out:}] profiles=[]",
			},
		},
		{
			name:    "local workload deleted: endpoint, then policy, then set removed",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), allowDB},
			steps:   [][]any{{del(wep("prod", "a", host, "app=web", "10.0.0.1/32"))}},
			want: []string{
				"policy-remove default/GlobalNetworkPolicy/allow-db",
				`set-remove s:role == "db"`,
				"wep-remove prod/a",
			},
		},
		{
			name:    "workload moves to another host",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), wep("prod", "x", "host2", "role=db", "10.0.1.1/32"), allowDB},
			steps:   [][]any{{wep("prod", "a", "host2", "role=db", "10.0.0.1/32")}},
			want: []string{
				"policy-remove default/GlobalNetworkPolicy/allow-db",
				`set-remove s:role == "db"`,
				"wep-remove prod/a",
			},
		},
		{
			name: "local block affinities",
			initial: []any{blockAff("h1-a", host, "10.65.1.0/26", "confirmed"), blockAff("h1-b", host, "10.65.2.0/26", "pending"),
				blockAff("h2-a", "host2", "10.65.3.0/26", "confirmed")},
			steps: [][]any{{del(blockAff("h1-a", host, "10.65.1.0/26", "confirmed")), blockAff("h1-b", host, "10.65.2.0/26", "confirmed")}},
			want:  []string{"block 10.65.2.0/26", "block-remove 10.65.1.0/26"},
		},
		{
			name: "profile rules change and profile deletion",
			initial: []any{mod(wep("prod", "a", host, "", "10.0.0.1/32"), func(w *api.WorkloadEndpoint) { w.Spec.Profiles = []string{"p1"} }),
				profileRes("p1", "", func(s *api.ProfileSpec) { s.Ingress = []api.Rule{allowFrom("role == 'x'")} })},
			steps: [][]any{{del(profileRes("p1", "", nil))}},
			want: []string{
				"profile p1 in=[Deny] out=[Deny]",
				`set-remove s:role == "x"`,
			},
		},
		{
			name:    "nothing is sent before the datastore is in sync; unchanged update sends nothing",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), allowDB},
			steps:   [][]any{{wep("prod", "a", host, "app=web", "10.0.0.1/32"), allowDB}},
			want:    nil,
		},
		{
			name: "non-local endpoint with inherited labels via its profile",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), profileRes("dbprof", "role=db", nil),
				mod(wep("prod", "x", "host2", "", "10.0.1.1/32"), func(w *api.WorkloadEndpoint) { w.Spec.Profiles = []string{"dbprof"} }),
				allowDB},
			steps: [][]any{{profileRes("dbprof", "role=fe", nil)}},
			want:  []string{`set s:role == "db" +[] -[10.0.1.1/32]`},
		},
		{
			name: "unknown kinds are ignored",
			initial: []any{wep("prod", "a", host, "app=web", "10.0.0.1/32"),
				&api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}, ObjectMeta: api.ObjectMeta{Name: host}}},
			want: []string{"wep prod/a if=calia v4=[10.0.0.1/32] v6=[] tiers=[] profiles=[]"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, rec := run(tc.initial, tc.steps...)
			if !tc.all {
				var kept []string
				for _, l := range got {
					if !strings.HasPrefix(l, "config ") && l != "insync" {
						kept = append(kept, l)
					}
				}
				got = kept
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
			for _, v := range rec.violations {
				t.Errorf("ordering: %s", v)
			}
		})
	}
}

func felixCfg(name string, f func(*api.FelixConfigurationSpec)) *api.FelixConfiguration {
	c := &api.FelixConfiguration{TypeMeta: api.TypeMeta{Kind: "FelixConfiguration"}}
	c.Name = name
	f(&c.Spec)
	return c
}

// blockAffinity stands in for IPAM's internal kind, which the graph reads
// by its JSON fields.
type blockAffinity struct {
	api.TypeMeta
	api.ObjectMeta `json:"metadata"`
	Spec           struct {
		Node  string `json:"node"`
		CIDR  string `json:"cidr"`
		State string `json:"state"`
	} `json:"spec"`
}

func (b *blockAffinity) SetDefaults()            {}
func (b *blockAffinity) Validate() api.ErrorList { return nil }

func blockAff(name, node, cidr, state string) *blockAffinity {
	b := &blockAffinity{TypeMeta: api.TypeMeta{Kind: "BlockAffinity"}}
	b.Name = name
	b.Spec.Node, b.Spec.CIDR, b.Spec.State = node, cidr, state
	return b
}

// The calls arrive in the order hoststate promises: sets, then policies,
// then endpoints; on the way out, endpoints, then policies, then sets.
func TestCallbackOrder(t *testing.T) {
	rec := newRecorder()
	g := New(host, rec, nil)
	rec.g = g
	g.OnUpdates(toUpdates([]any{wep("prod", "a", host, "app=web", "10.0.0.1/32"), allowDB}))
	if len(rec.lines) != 0 {
		t.Fatalf("sent before InSync: %v", rec.lines)
	}
	g.OnStatus(datastore.InSync)
	want := []string{"config", "set", "policy", "wep", "insync"}
	if got := kinds(rec.lines); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("sync order = %v, want %v", got, want)
	}
	rec.lines = nil
	g.OnUpdates(toUpdates([]any{del(wep("prod", "a", host, "app=web", "10.0.0.1/32"))}))
	want = []string{"wep-remove", "policy-remove", "set-remove"}
	if got := kinds(rec.lines); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("removal order = %v, want %v", got, want)
	}
}

func kinds(lines []string) []string {
	var out []string
	for _, l := range lines {
		k, _, _ := strings.Cut(l, " ")
		out = append(out, k)
	}
	return out
}

// Garbage in the datastore must not crash the graph.
func TestNoPanicOnBadInput(t *testing.T) {
	rec := newRecorder()
	g := New(host, rec, nil)
	rec.g = g
	g.OnStatus(datastore.InSync)
	bad := []datastore.Update{
		{Type: datastore.Added, Key: api.Key{Kind: "GlobalNetworkPolicy", Name: "x"}, Object: &api.Profile{}},
		{Type: datastore.Added, Key: api.Key{Kind: "Profile", Name: "x"}, Object: &api.Tier{}},
		{Type: datastore.Added, Key: api.Key{Kind: "WorkloadEndpoint", Name: "x"}, Object: nil},
		{Type: datastore.Deleted, Key: api.Key{Kind: "Tier", Name: "nope"}},
		{Type: datastore.Deleted, Key: api.Key{Kind: "GlobalNetworkPolicy", Name: "nope"}},
		{Type: datastore.Added, Key: api.Key{Kind: "IPPool", Name: "p"}, Object: &api.IPPool{Spec: api.IPPoolSpec{CIDR: "junk"}}},
		{Type: datastore.Added, Key: api.Key{Kind: "BlockAffinity", Name: "b"}, Object: blockAff("b", host, "junk", "")},
	}
	bad = append(bad, toUpdates([]any{
		wep("prod", "a", host, "app=web", "not-an-ip", "10.0.0.1/33"),
		hep("h", host, "", "eth0", "bogus"),
		netset("", "n", "a=b", "300.0.0.0/8"),
		gnp("g", "app == 'web'", ingress(
			api.Rule{Action: "Explode"},
			api.Rule{Action: api.Allow, Protocol: proto("bogus")},
			api.Rule{Action: api.Allow, Source: api.EntityRule{Nets: []string{"nope"}}},
			api.Rule{Action: api.Allow, Source: api.EntityRule{NamespaceSelector: "((("}},
			api.Rule{Action: api.Allow, Source: api.EntityRule{NotSelector: "a =="}},
			api.Rule{Action: api.Allow, IPVersion: ptr(5)},
			api.Rule{Action: api.Allow, ICMP: &api.ICMPFields{Type: ptr(999)}},
			api.Rule{Action: api.Allow, Destination: api.EntityRule{Services: &api.ServiceMatch{Name: "s"}}},
		)),
		gnp("g2", "all()", func(s *api.GlobalNetworkPolicySpec) { s.NamespaceSelector = "bad selector" }),
		felixCfg("default", func(s *api.FelixConfigurationSpec) {
			s.FailsafeInboundHostPorts = &[]api.ProtoPort{{Protocol: "gre", Port: 1}, {Protocol: "tcp", Port: 2, Net: "x"}}
		}),
	})...)
	g.OnUpdates(bad)
	got := strings.Join(rec.take(), "\n")
	for _, want := range []string{"policy default/GlobalNetworkPolicy/g in=[] out=[]", "config prefixes=cali toHost=Drop in= "} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
