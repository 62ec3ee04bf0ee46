package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validTopology = `
datastore: {kind: embedded}
router: {kind: bird, asNumber: 64513, address: 172.17.8.1/24}
hosts:
  - {name: host1, address: 172.17.8.101/24}
  - {name: host2, address: 172.17.8.102/24, asNumber: 64514}
workloads:
  - {name: A, host: host1, address: 192.168.1.1, labels: {group: GROUP1}, profiles: [group1]}
  - {name: D, host: host2, namespace: prod, labels: {role: db}}
`

func TestParseTopologyValid(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", []byte(validTopology))
	if err != nil {
		t.Fatalf("ParseTopology: %v", err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"name from the file name", topo.Name, "demo"},
		{"datastore kind", topo.Datastore.Kind, "embedded"},
		{"datastore address: highest free on the fabric", topo.Datastore.Address, "172.17.8.254/24"},
		{"router name default", topo.Router.Name, "router"},
		{"router default route default", topo.Router.HostsDefaultViaRouter(), true},
		{"host AS", topo.Hosts[1].ASNumber, uint32(64514)},
		{"workload namespace default", topo.Workloads[0].Namespace, "default"},
		{"workload namespace", topo.Workloads[1].Namespace, "prod"},
		{"fabric", topo.FabricPrefix().String(), "172.17.8.0/24"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestParseTopologyCluster(t *testing.T) {
	topo, err := ParseTopology("k.yaml", []byte("name: k\nhosts: [{name: node1, address: 10.0.0.1/24}]\nkubernetes: {}"))
	if err != nil {
		t.Fatal(err)
	}
	if !topo.IsCluster() || !topo.Kubernetes() || topo.Cluster.KubeProxy != "nftables" {
		t.Errorf("a kubernetes: section: cluster %v, kubernetes datastore %v, kube-proxy %q; want true, true, nftables", topo.IsCluster(), topo.Kubernetes(), topo.Cluster.KubeProxy)
	}
}

func TestParseTopologyFabric(t *testing.T) {
	tests := []struct {
		name, yaml, want string
		wire             bool
	}{
		{"default", "hosts: [{name: a, address: 10.0.0.1/24}]", FabricBridge, false},
		{"bridge", "fabric: bridge\nhosts: [{name: a, address: 10.0.0.1/24}]", FabricBridge, false},
		{"wire", "fabric: wire\nhosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.0.2/24}]", FabricWire, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := ParseTopology("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if topo.Fabric != tt.want || topo.Wire() != tt.wire {
				t.Errorf("fabric %q, Wire() %v; want %q, %v", topo.Fabric, topo.Wire(), tt.want, tt.wire)
			}
			if topo.Datastore.Address != "10.0.0.254/24" {
				t.Errorf("datastore address %q, want the highest free of the hosts' subnet", topo.Datastore.Address)
			}
		})
	}
}

func TestParseTopologyFRRExternal(t *testing.T) {
	topo, err := ParseTopology("t.yaml", []byte(`name: x
router: {kind: frr, asNumber: 65001, address: 10.0.0.2/24, defaultRoute: false}
hosts: [{name: h, address: 10.0.0.1/24, asNumber: 65010}, {name: i, address: 10.0.0.3/24}]
externalHosts: [{name: ext1, address: 10.200.0.10/24}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := topo.Router.ExternalAddress; got != "10.200.0.1/24" {
		t.Errorf("router external address = %q, want the first of the segment, 10.200.0.1/24", got)
	}
	conf := FRRConfig(topo)
	for _, want := range []string{
		"router bgp 65001\n",
		" neighbor 10.0.0.1 remote-as 65010\n",
		" neighbor 10.0.0.3 remote-as 64512\n",
		"  network 10.200.0.0/24\n",
		"  neighbor 10.0.0.1 default-originate\n",
		" bgp graceful-restart\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("FRR config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "route-reflector-client") {
		t.Errorf("no host shares the router's AS, yet a route-reflector client:\n%s", conf)
	}
	bird := BirdConfig(topo)
	for _, want := range []string{`interface "ext0"`, "route 0.0.0.0/0 unreachable"} {
		if !strings.Contains(bird, want) {
			t.Errorf("BIRD config lacks %q:\n%s", want, bird)
		}
	}
}

func TestParseTopologyInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every one must appear in the error
	}{
		{"empty", ``, []string{"t.yaml: empty topology"}},
		{"not a mapping", `- a`, []string{"must be a mapping"}},
		{"bad yaml", "hosts: [", []string{"t.yaml: not valid YAML"}},
		{"duplicate key", "hosts: []\nhosts: []", []string{"not valid YAML"}},
		{"unknown top-level field", "hosts: [{name: h, address: 10.0.0.1/24}]\nhost: []", []string{`t.yaml: host: unknown field`}},
		{"misspelt host field", "hosts: [{name: h, adress: 10.0.0.1/24}]", []string{"hosts[0].adress: unknown field (known: name, address, asNumber, address6)"}},
		{"misspelt workload field", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: A, host: h, label: {a: b}}]", []string{"workloads[0].label: unknown field"}},
		{"misspelt router field", "router: {kind: bird, as: 1, address: 10.0.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{"router.as: unknown field"}},
		{"hosts not a list", "hosts: {name: h}", []string{"hosts: expected a list"}},
		{"wrong type", "hosts: [{name: h, address: 10.0.0.1/24, asNumber: many}]", []string{"hosts.asNumber: expected uint32, got string"}},
		{"no hosts", "workloads: []", []string{"hosts: at least one host is required"}},
		{"cluster with another datastore", "datastore: {kind: embedded}\nhosts: [{name: h, address: 10.0.0.1/24}]\nkubernetes: {}", []string{`datastore.kind: "embedded": a lab with a kubernetes: section`}},
		{"cluster with workloads", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: a, host: h}]\nkubernetes: {}", []string{"workloads: a lab with a kubernetes: section runs pods through its kubelets"}},
		{"cluster kube-proxy mode", "hosts: [{name: h, address: 10.0.0.1/24}]\nkubernetes: {kubeProxy: ipvs}", []string{`kubernetes.kubeProxy: "ipvs" is not a kube-proxy mode`}},
		{"misspelt cluster field", "hosts: [{name: h, address: 10.0.0.1/24}]\nkubernetes: {kubeproxy: none}", []string{"kubernetes.kubeproxy: unknown field (known: kubeProxy)"}},
		{"host without address", "hosts: [{name: h}]", []string{"hosts[0].address: required"}},
		{"host without name", "hosts: [{address: 10.0.0.1/24}]", []string{"hosts[0].name: required"}},
		{"bad host address", "hosts: [{name: h, address: 10.0.0.300/24}]", []string{`hosts[0].address: "10.0.0.300/24" is not an IPv4 address`}},
		{"address without prefix", "hosts: [{name: h, address: 10.0.0.1}]", []string{`hosts[0].address: "10.0.0.1" is not an IPv4 address with a prefix length`}},
		{"network address", "hosts: [{name: h, address: 10.0.0.0/24}]", []string{"network or broadcast"}},
		{"two subnets", "hosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.1.1/24}]", []string{"hosts[1].address", "not on the fabric subnet 10.0.0.0/24"}},
		{"same address", "hosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.0.1/24}]", []string{"hosts[1].address: 10.0.0.1 is already used by hosts[0].address"}},
		{"duplicate names", "hosts: [{name: a, address: 10.0.0.1/24}, {name: A, address: 10.0.0.2/24}]", []string{`hosts[1].name: "A" is already used by hosts[0].name`}},
		{"reserved name", "hosts: [{name: fabric, address: 10.0.0.1/24}]", []string{`hosts[0].name: "fabric" is reserved`}},
		{"bad name", "hosts: [{name: 'a b', address: 10.0.0.1/24}]", []string{`hosts[0].name: "a b" is not a valid name`}},
		{"bad lab name", "name: My-Lab\nhosts: [{name: a, address: 10.0.0.1/24}]", []string{`name: "My-Lab" is not a valid lab name`}},
		{"router kind", "router: {kind: cisco, asNumber: 1, address: 10.0.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{`router.kind: "cisco" is not a router kind`}},
		{"router missing fields", "router: {kind: bird}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{"router.asNumber: required", "router.address: required"}},
		{"router off the fabric", "router: {kind: bird, asNumber: 1, address: 10.9.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{"router.address", "not on the fabric"}},
		{"router name clash", "router: {name: h, kind: bird, asNumber: 1, address: 10.0.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{`router.name: "h" is already used by hosts[0].name`}},
		{"external hosts without router", "hosts: [{name: h, address: 10.0.0.1/24}]\nexternalHosts: [{name: x, address: 10.200.0.10/24}]", []string{"externalHosts: need a router"}},
		{"external host on the fabric", "router: {kind: frr, asNumber: 1, address: 10.0.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]\nexternalHosts: [{name: x, address: 10.0.0.10/24}]", []string{"externalHosts[0].address", "overlaps the fabric"}},
		{"external hosts on two subnets", "router: {kind: frr, asNumber: 1, address: 10.0.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]\nexternalHosts: [{name: x, address: 10.200.0.10/24}, {name: z, address: 10.201.0.10/24}]", []string{"externalHosts[1].address", "not on the external subnet"}},
		{"external address without external hosts", "router: {kind: bird, asNumber: 1, address: 10.0.0.2/24, externalAddress: 10.200.0.1/24}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{"router.externalAddress: set, but there are no externalHosts"}},
		{"misspelt external host field", "router: {kind: bird, asNumber: 1, address: 10.0.0.2/24}\nhosts: [{name: h, address: 10.0.0.1/24}]\nexternalHosts: [{name: x, adress: 10.200.0.10/24}]", []string{"externalHosts[0].adress: unknown field"}},
		{"datastore kind", "datastore: {kind: consul}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{`datastore.kind: "consul" is not a datastore kind`}},
		{"kubernetes datastore with members", "datastore: {kind: kubernetes, members: 3}\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{"datastore.members: a kubernetes datastore has one etcd member"}},
		{"kubernetes node name", "datastore: {kind: kubernetes}\nhosts: [{name: Host_1, address: 10.0.0.1/24}]", []string{`hosts[0].name: "Host_1" names a Kubernetes Node`}},
		{"kubernetes namespace name", "datastore: {kind: kubernetes}\nhosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: a, host: h, namespace: Prod}]", []string{`workloads[0].namespace: "Prod" is not a Kubernetes namespace name`}},
		{"kubernetes workload profiles", "datastore: {kind: kubernetes}\nhosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: a, host: h, profiles: [p]}]", []string{"workloads[0].profiles: a pod's profiles are those of its namespace"}},
		{"workload without host", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: A}]", []string{"workloads[0].host: required"}},
		{"workload on unknown host", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: A, host: nope}]", []string{`workloads[0].host: "nope" is not one of the hosts`}},
		{"workload address with prefix", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: A, host: h, address: 192.168.1.1/32}]", []string{`workloads[0].address: "192.168.1.1/32" is not an IPv4 address`}},
		{"workload same address", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: A, host: h, address: 192.168.1.1}, {name: B, host: h, address: 192.168.1.1}]", []string{"workloads[1].address: 192.168.1.1 is already used by workloads[0]"}},
		{"workload name clashes with host", "hosts: [{name: h, address: 10.0.0.1/24}]\nworkloads: [{name: h, host: h}]", []string{`workloads[0].name: "h" is already used by hosts[0].name`}},
		{"fabric kind", "fabric: hub\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{`fabric: "hub" is not a fabric kind (bridge or wire)`}},
		{"wire with one host", "fabric: wire\nhosts: [{name: h, address: 10.0.0.1/24}]", []string{"fabric: a wire joins exactly two hosts, not 1"}},
		{"wire with three hosts", "fabric: wire\nhosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.0.2/24}, {name: c, address: 10.0.0.3/24}]", []string{"fabric: a wire joins exactly two hosts, not 3"}},
		{"wire with a router", "fabric: wire\nrouter: {kind: bird, asNumber: 1, address: 10.0.0.3/24}\nhosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.0.2/24}]", []string{"router: a wire lab has no router"}},
		{"wire with external hosts", "fabric: wire\nhosts: [{name: a, address: 10.0.0.1/24}, {name: b, address: 10.0.0.2/24}]\nexternalHosts: [{name: x, address: 10.200.0.10/24}]", []string{"externalHosts: need a router"}},
		{"several problems at once", "hosts: [{name: h}]\nworkloads: [{name: A, host: x}]", []string{"hosts[0].address: required", `workloads[0].host: "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTopology("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseTopology accepted:\n%s", tt.yaml)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "t.yaml: ") {
					t.Errorf("error line %q does not name the file", line)
				}
			}
		})
	}
}

func TestLoadTopologyManifests(t *testing.T) {
	dir := t.TempDir()
	topo := "hosts: [{name: h, address: 10.0.0.1/24}]\nmanifests: [policy.yaml]\n"
	path := filepath.Join(dir, "mylab.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTopology(path); err == nil || !strings.Contains(err.Error(), "manifests[0]") {
		t.Fatalf("missing manifest: got %v, want an error naming manifests[0]", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTopology(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "mylab" || got.Manifests[0] != filepath.Join(dir, "policy.yaml") {
		t.Errorf("got name %q manifests %v", got.Name, got.Manifests)
	}
}

// FuzzParseTopology: bad input is an error, never a panic.
func FuzzParseTopology(f *testing.F) {
	f.Add([]byte(validTopology))
	f.Add([]byte("hosts: [{name: h, address: 10.0.0.1/31}]"))
	f.Add([]byte("router: 3\nhosts: [1, 2]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseTopology("f.yaml", data)
	})
}

func TestBirdConfig(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", []byte(`
router: {kind: bird, asNumber: 64513, address: 172.17.8.1/24}
hosts:
  - {name: host1, address: 172.17.8.101/24}
  - {name: rack-2, address: 172.17.8.102/24, asNumber: 64513}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := `# Generated by serval-lab for lab "demo": the top-of-rack router.
log stderr all;
router id 172.17.8.1;

protocol device {
	scan time 10;
}

# What the hosts advertise goes into this router's kernel.
protocol kernel {
	ipv4 {
		import none;
		export where source = RTS_BGP;
	};
	merge paths on;
}

template bgp serval_host {
	local 172.17.8.1 as 64513;
	graceful restart on;
	connect retry time 5;
	# Hosts share the router's segment: their next hops resolve on it,
	# not through an IGP (BIRD's default for iBGP, which would leave every
	# route from a route-reflector client unreachable).
	direct;
	ipv4 {
		import all;
		export all;
	};
}

protocol bgp host1 from serval_host {
	description "host host1";
	neighbor 172.17.8.101 as 64512;
}

protocol bgp rack_2 from serval_host {
	description "host rack-2";
	neighbor 172.17.8.102 as 64513;
	rr client;
}
`
	if got := BirdConfig(topo); got != want {
		t.Errorf("BirdConfig:\n%s\nwant:\n%s", got, want)
	}
}

func TestNodesYAML(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", []byte(validTopology))
	if err != nil {
		t.Fatal(err)
	}
	want := `---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: host1
spec:
  bgp:
    ipv4Address: 172.17.8.101/24
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: host2
spec:
  bgp:
    ipv4Address: 172.17.8.102/24
    asNumber: 64514
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: lab-tor
spec:
  peerIP: 172.17.8.1
  asNumber: 64513
`
	if got := nodesYAML(topo); got != want {
		t.Errorf("nodesYAML:\n%s\nwant:\n%s", got, want)
	}
}

func TestMatrixText(t *testing.T) {
	names := []string{"A", "B", "C"}
	res := [][]bool{{false, true, false}, {true, false, false}, {false, false, false}}
	var b strings.Builder
	FormatMatrix(&b, ProbeSpec{Proto: "icmp"}, names, res)
	gotNames, want, err := ParseMatrix(b.String())
	if err != nil {
		t.Fatalf("ParseMatrix of FormatMatrix output: %v\n%s", err, b.String())
	}
	if strings.Join(gotNames, ",") != "A,B,C" {
		t.Errorf("names %v", gotNames)
	}
	if d := CompareMatrix(want, names, res); len(d) != 0 {
		t.Errorf("a matrix differs from itself: %v", d)
	}
	res[2][0] = true
	d := CompareMatrix(want, names, res)
	if len(d) != 1 || d[0] != "C -> A: expected deny, got allow" {
		t.Errorf("CompareMatrix = %q", d)
	}
	for _, bad := range []string{"A B\n", "FROM\\TO A B\nA - maybe\n", "FROM\\TO A B\nA -\n"} {
		if _, _, err := ParseMatrix(bad); err == nil {
			t.Errorf("ParseMatrix(%q) accepted", bad)
		}
	}
}

func TestProbeSpecDefaults(t *testing.T) {
	tests := []struct {
		in      ProbeSpec
		want    string
		wantErr bool
	}{
		{ProbeSpec{}, "tcp/80", false},
		{ProbeSpec{Proto: "udp", Port: 53}, "udp/53", false},
		{ProbeSpec{Proto: "icmp", Port: 99}, "icmp", false},
		{ProbeSpec{Proto: "sctp"}, "", true},
		{ProbeSpec{Port: 70000}, "", true},
	}
	for _, tt := range tests {
		got, err := tt.in.withDefaults()
		if (err != nil) != tt.wantErr {
			t.Errorf("%+v: err %v", tt.in, err)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("%+v: %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestNetConf(t *testing.T) {
	data, err := NetConf("http://172.17.8.254:2379", "host1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type": "serval"`, `"nodename": "host1"`, `"etcd_endpoints": "http://172.17.8.254:2379"`, `"type": "serval-ipam"`, `"labels": true`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("NetConf lacks %s:\n%s", want, data)
		}
	}
}

func TestKubernetesTopology(t *testing.T) {
	topo, err := ParseTopology("k.yaml", []byte(`
datastore: {kind: kubernetes}
hosts:
  - {name: h1, address: 172.30.8.101/24}
workloads:
  - {name: Web_1, host: h1, namespace: shop, address: 192.168.7.7, labels: {app: web}}
  - {name: db, host: h1}
`))
	if err != nil {
		t.Fatalf("ParseTopology: %v", err)
	}
	if !topo.Kubernetes() || topo.Datastore.Address != "172.30.8.254/24" {
		t.Errorf("datastore %+v: want kind kubernetes at the highest free address", topo.Datastore)
	}
	l := &Lab{Name: "k", Dir: "/run/serval-lab/k", State: State{Topology: topo, EtcdEndpoint: EtcdEndpoints(topo)}}
	if got, want := strings.Join(l.datastoreArgs(), " "), "--datastore-type kubernetes --kubeconfig /run/serval-lab/k/kubeconfig"; got != want {
		t.Errorf("datastore flags %q, want %q", got, want)
	}
	if got, want := l.kubeURL(), "https://172.30.8.254:6443"; got != want {
		t.Errorf("API server URL %q, want %q", got, want)
	}
	tests := []struct {
		w                 Workload
		name, ns, ipAddrs string
	}{
		{topo.Workloads[0], "web-1", "shop", `["192.168.7.7"]`},
		{topo.Workloads[1], "db", "default", ""},
	}
	for _, tt := range tests {
		p, err := podOf(&tt.w)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != tt.name || p.Namespace != tt.ns || p.Spec.NodeName != "h1" || p.Annotations["cni.projectcalico.org/ipAddrs"] != tt.ipAddrs {
			t.Errorf("pod of %s: %s/%s on %q, ipAddrs %q; want %s/%s on h1, ipAddrs %q", tt.w.Name, p.Namespace, p.Name, p.Spec.NodeName, p.Annotations["cni.projectcalico.org/ipAddrs"], tt.ns, tt.name, tt.ipAddrs)
		}
		if len(p.Spec.Containers) != 1 || p.Spec.Containers[0].Image == "" {
			t.Errorf("pod of %s: containers %+v, want one with an image", tt.w.Name, p.Spec.Containers)
		}
		for k, v := range tt.w.Labels {
			if p.Labels[k] != v {
				t.Errorf("pod of %s: labels %v lack %s=%s", tt.w.Name, p.Labels, k, v)
			}
		}
		rc := l.runtimeConf(&tt.w)
		args := map[string]string{}
		for _, a := range rc.Args {
			args[a[0]] = a[1]
		}
		if args["K8S_POD_NAMESPACE"] != tt.ns || args["K8S_POD_NAME"] != tt.name || args["IP"] != "" {
			t.Errorf("CNI args of %s: %v; want the pod's namespace and name, no IP", tt.w.Name, rc.Args)
		}
	}
	data, err := kubeNetConf("/run/serval-lab/k/kubeconfig", "h1", "/x.mtu", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"datastore_type": "kubernetes"`, `"kubeconfig": "/run/serval-lab/k/kubeconfig"`, `"nodename": "h1"`, `"type": "serval-ipam"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("kubernetes net conf lacks %s:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "etcd_endpoints") {
		t.Errorf("kubernetes net conf names etcd:\n%s", data)
	}
}
