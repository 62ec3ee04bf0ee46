package why

import (
	"context"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/verdict"
)

// The demo's world: A, C on host1 in GROUP1; B on host1 and D on host2 in
// GROUP2; E on host2 in GROUP1.
var world = `
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: group1}
spec:
  ingress: [{action: Allow, source: {selector: group == 'GROUP1'}}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: group2}
spec:
  ingress: [{action: Allow, source: {selector: group == 'GROUP2'}}]
  egress: [{action: Allow}]
` + wep("a", "host1", "192.168.1.1", "fd00::1", "GROUP1", "group1") +
	wep("b", "host1", "192.168.1.2", "fd00::2", "GROUP2", "group2") +
	wep("c", "host1", "192.168.1.3", "fd00::3", "GROUP1", "group1") +
	wep("d", "host2", "192.168.1.4", "fd00::4", "GROUP2", "group2") +
	wep("e", "host2", "192.168.1.5", "fd00::5", "GROUP1", "group1")

func wep(name, node, v4, v6, group, profile string) string {
	return `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: ` + node + `-k8s-` + name + `-eth0, namespace: demo, labels: {group: ` + group + `}}
spec: {orchestrator: k8s, endpoint: eth0, node: ` + node + `, workload: ` + name + `, interfaceName: cali` + name + `, ipNetworks: [` + v4 + `/32, ` + v6 + `/128], profiles: [` + profile + `]}
`
}

const webPolicy = `
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: group2-to-group1-web}
spec:
  selector: group == 'GROUP1'
  types: [Ingress]
  ingress:
    - {action: Allow, protocol: TCP, source: {selector: group == 'GROUP2'}, destination: {ports: [80]}}
    - {action: Pass}
`

const tiered = `
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.no-d}
spec:
  tier: security
  selector: all()
  types: [Egress]
  egress:
    - {action: Log, destination: {nets: [192.168.1.4/32]}}
    - {action: Deny, destination: {nets: [192.168.1.4/32]}}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: b-to-e-udp, namespace: demo}
spec:
  selector: group == 'GROUP2'
  types: [Egress]
  egress:
    - {action: Allow, protocol: UDP, destination: {ports: [53]}}
`

func snapshot(t *testing.T, yaml string) *Snapshot {
	t.Helper()
	ds := datastore.NewMemory(nil)
	docs, err := api.Load("test.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, d := range docs {
		if _, err := ds.Create(ctx, d.Resource); err != nil {
			t.Fatalf("create %s: %v", api.KeyOf(d.Resource), err)
		}
	}
	s, err := Load(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// summary is a trace in one line: the deciding steps and the verdict.
func summary(t *verdict.Trace) string {
	if t == nil {
		return "-"
	}
	var parts []string
	for _, s := range t.Steps {
		switch s.Kind {
		case verdict.StepRule:
			who := s.Policy
			if s.Profile != "" {
				who = "profile " + s.Profile
			}
			parts = append(parts, who+"#"+string(rune('0'+s.Rule))+":"+string(s.Action))
		case verdict.StepTierEnd:
			parts = append(parts, "end "+s.Tier+":"+string(s.Action))
		case verdict.StepNoPolicy:
			parts = append(parts, "drop")
		case verdict.StepBase:
			parts = append(parts, s.Note)
		}
	}
	return strings.Join(parts, ",") + "=" + string(t.Verdict)
}

func TestExplain(t *testing.T) {
	cases := []struct {
		name, yaml, src, dst, proto string
		port                        uint16
		fam                         int
		egress, ingress             string
		want                        hoststate.Action
	}{
		{"same group, other host", world, "a", "e", "icmp", 0, 0, "profile group1#1:Allow=Allow", "profile group1#1:Allow=Allow", hoststate.Allow},
		{"other group", world, "demo/host1-k8s-b-eth0", "192.168.1.1", "icmp", 0, 0, "profile group2#1:Allow=Allow", "drop=Deny", hoststate.Deny},
		{"other group v6", world, "b", "fd00::1", "tcp", 80, 0, "profile group2#1:Allow=Allow", "drop=Deny", hoststate.Deny},
		{"plain address", world, "a", "10.0.0.1", "tcp", 443, 0, "profile group1#1:Allow=Allow", "-", hoststate.Allow},
		{"web policy allows", world + webPolicy, "b", "a", "tcp", 80, 0, "profile group2#1:Allow=Allow", "group2-to-group1-web#1:Allow=Allow", hoststate.Allow},
		{"web policy passes", world + webPolicy, "b", "a", "tcp", 81, 6, "profile group2#1:Allow=Allow", "group2-to-group1-web#2:Pass,drop=Deny", hoststate.Deny},
		{"web policy passes to profile", world + webPolicy, "c", "a", "icmp", 0, 0, "profile group1#1:Allow=Allow", "group2-to-group1-web#2:Pass,profile group1#1:Allow=Allow", hoststate.Allow},
		{"tier deny with log", world + tiered, "e", "d", "icmp", 0, 0, "security.no-d#1:Log,security.no-d#2:Deny=Deny", "drop=Deny", hoststate.Deny},
		{"tier passes by default", world + tiered, "b", "e", "udp", 53, 0, "end security:Pass,demo/b-to-e-udp#1:Allow=Allow", "drop=Deny", hoststate.Deny},
		{"default tier allows", world + tiered, "d", "b", "udp", 53, 0, "end security:Pass,demo/b-to-e-udp#1:Allow=Allow", "profile group2#1:Allow=Allow", hoststate.Allow},
		{"default tier ends in deny", world + tiered, "d", "b", "udp", 54, 0, "end security:Pass,end default:Deny=Deny", "profile group2#1:Allow=Allow", hoststate.Deny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := snapshot(t, c.yaml)
			p, _ := map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17}[c.proto]
			r, err := s.Explain(Query{Src: c.src, Dst: c.dst, Protocol: p, DstPort: c.port, SrcPort: 40000, Family: c.fam})
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(r.Egress); got != c.egress {
				t.Errorf("egress %s, want %s", got, c.egress)
			}
			if got := summary(r.Ingress); got != c.ingress {
				t.Errorf("ingress %s, want %s", got, c.ingress)
			}
			if r.Verdict != c.want {
				t.Errorf("verdict %s, want %s", r.Verdict, c.want)
			}
			var b strings.Builder
			Print(&b, r)
			if t.Failed() {
				t.Log(b.String())
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	s := snapshot(t, world)
	for _, arg := range []string{"nobody", "demo/nobody", "other/a"} {
		if _, err := s.Resolve(arg); err == nil {
			t.Errorf("Resolve(%q): no error", arg)
		}
	}
	if _, err := s.Explain(Query{Src: "a", Dst: "10.0.0.1", Family: 6, Protocol: 1}); err == nil {
		t.Error("a v6 packet to a v4 address: no error")
	}
}

const stagedDeny = `
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: no-ping-e}
spec:
  selector: group == 'GROUP1'
  types: [Ingress]
  ingress: [{action: Deny, protocol: ICMP, destination: {nets: [192.168.1.5/32]}}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: group2-to-group1-web}
spec: {stagedAction: Delete}
`

// TestStaged: a staged deny changes nothing enforced (the graph ignores
// staged kinds) and the staged snapshot names the staged policy; a staged
// Delete removes the enforced policy of the same name.
func TestStaged(t *testing.T) {
	s := snapshot(t, world+webPolicy+stagedDeny)
	if len(s.Staged) != 2 {
		t.Fatalf("staged policies listed: %d, want 2", len(s.Staged))
	}
	// The agents' graph, fed the staged policies too, enforces none of them.
	all := &Snapshot{Objects: append(append([]api.Resource{}, s.Objects...), s.Staged...)}
	h := all.Host("host2")
	for id := range h.Policies {
		if id.Name != "group2-to-group1-web" {
			t.Errorf("the graph rendered %v", id)
		}
	}
	q := Query{Src: "a", Dst: "e", Protocol: 1}
	enf, err := all.Explain(q)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(enf.Ingress); got != "group2-to-group1-web#2:Pass,profile group1#1:Allow=Allow" {
		t.Errorf("enforced ingress %s", got)
	}
	st, err := s.WithStaged()
	if err != nil {
		t.Fatal(err)
	}
	sr, err := st.Explain(q)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(sr.Ingress); got != "no-ping-e#1:Deny=Deny" || sr.Verdict != hoststate.Deny {
		t.Errorf("staged ingress %s, verdict %s", got, sr.Verdict)
	}
	// B to A's web: allowed now, denied once the web policy is deleted.
	q = Query{Src: "b", Dst: "a", Protocol: 6, DstPort: 80}
	if r, _ := s.Explain(q); r.Verdict != hoststate.Allow {
		t.Errorf("b to a:80 enforced: %s", r.Verdict)
	}
	if r, _ := st.Explain(q); r.Verdict != hoststate.Deny || summary(r.Ingress) != "end default:Deny=Deny" {
		t.Errorf("b to a:80 staged: %s %s", r.Verdict, summary(r.Ingress))
	}
	var b strings.Builder
	PrintStaged(&b, enf, sr, s.StagedNames())
	for _, want := range []string{"ALLOWED now, DENIED with the staged policies", "StagedGlobalNetworkPolicy no-ping-e (Set)", "ENFORCED", "GlobalNetworkPolicy no-ping-e"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("side by side lacks %q:\n%s", want, b.String())
		}
	}
}

const stagedK8s = `
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: group1-web, namespace: demo}
spec:
  podSelector: {matchLabels: {group: GROUP1}}
  ingress:
    - from: [{podSelector: {matchLabels: {group: GROUP2}}}]
      ports: [{port: 80}]
`

// TestStagedKubernetes: a staged Kubernetes policy is traced as the
// Calico policy it becomes, and isolates the pods it selects.
func TestStagedKubernetes(t *testing.T) {
	s := snapshot(t, world+stagedK8s)
	st, err := s.WithStaged()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src, dst      string
		proto         uint8
		port          uint16
		now, staged   hoststate.Action
		stagedIngress string
	}{
		{"b", "a", 6, 80, hoststate.Deny, hoststate.Allow, "demo/knp.default.group1-web#1:Allow=Allow"},
		{"c", "a", 1, 0, hoststate.Allow, hoststate.Deny, "end default:Deny=Deny"},
		{"a", "b", 1, 0, hoststate.Deny, hoststate.Deny, "drop=Deny"},
	} {
		q := Query{Src: c.src, Dst: c.dst, Protocol: c.proto, DstPort: c.port, SrcPort: 40000}
		r, err := s.Explain(q)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := st.Explain(q)
		if err != nil {
			t.Fatal(err)
		}
		if r.Verdict != c.now || sr.Verdict != c.staged || summary(sr.Ingress) != c.stagedIngress {
			t.Errorf("%s -> %s: now %s, staged %s %s; want %s, %s %s", c.src, c.dst, r.Verdict, sr.Verdict, summary(sr.Ingress), c.now, c.staged, c.stagedIngress)
		}
	}
	if n := s.StagedNames(); len(n) != 1 || n[0] != "StagedKubernetesNetworkPolicy demo/group1-web (Set, as NetworkPolicy knp.default.group1-web)" {
		t.Errorf("staged names %q", n)
	}
}

const hosts = `
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: host1-eth0, labels: {role: node}}
spec: {node: host1, interfaceName: eth0, expectedIPs: [172.17.8.101]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: host2-eth0, labels: {role: node}}
spec: {node: host2, interfaceName: eth0, expectedIPs: [172.17.8.102]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: nodes}
spec:
  selector: role == 'node'
  ingress: [{action: Allow, protocol: TCP, source: {selector: group == 'GROUP1'}, destination: {ports: [9100]}}]
  egress: [{action: Allow}]
`

// TestHostEndpoints: host endpoint policy, failsafe ports and the
// workload-to-own-host action.
func TestHostEndpoints(t *testing.T) {
	s := snapshot(t, world+hosts)
	for _, c := range []struct {
		src, dst        string
		port            uint16
		egress, ingress string
		want            hoststate.Action
	}{
		{"e", "host1-eth0", 9100, "profile group1#1:Allow=Allow", "nodes#1:Allow=Allow", hoststate.Allow},
		{"d", "host1-eth0", 9100, "profile group2#1:Allow=Allow", "end default:Deny=Deny", hoststate.Deny},
		{"d", "172.17.8.101", 22, "profile group2#1:Allow=Allow", "failsafe inbound port 6/22=Allow", hoststate.Allow},
		{"a", "host1-eth0", 9100, "profile group1#1:Allow=Allow", "workload to its own host: DefaultEndpointToHostAction Drop=Deny", hoststate.Deny},
		{"host1-eth0", "d", 80, "nodes#1:Allow=Allow", "drop=Deny", hoststate.Deny},
		{"host1-eth0", "a", 80, "host to its own workload: host endpoint policy does not apply, the workload's ingress decides=Allow", "drop=Deny", hoststate.Deny},
	} {
		r, err := s.Explain(Query{Src: c.src, Dst: c.dst, Protocol: 6, DstPort: c.port, SrcPort: 40000})
		if err != nil {
			t.Fatal(err)
		}
		if summary(r.Egress) != c.egress || summary(r.Ingress) != c.ingress || r.Verdict != c.want {
			t.Errorf("%s -> %s:%d: egress %s, ingress %s, %s; want %s, %s, %s", c.src, c.dst, c.port,
				summary(r.Egress), summary(r.Ingress), r.Verdict, c.egress, c.ingress, c.want)
		}
	}
}
