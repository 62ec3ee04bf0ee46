package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPortDecoding(t *testing.T) {
	cases := []struct {
		json     string
		min, max int
		name     string
		bad      string // part of the problem, "" when valid
		out      string // JSON written back
	}{
		{`80`, 80, 80, "", "", `80`},
		{`"80"`, 80, 80, "", "", `80`},
		{`"8080:8090"`, 8080, 8090, "", "", `"8080:8090"`},
		{`"1:65535"`, 1, 65535, "", "", `"1:65535"`},
		{`"http"`, 0, 0, "http", "", `"http"`},
		{`"named-port"`, 0, 0, "named-port", "", `"named-port"`},
		{`65535`, 65535, 65535, "", "", `65535`},
		{`65536`, 0, 0, "", "not a valid port (1-65535)", `"65536"`},
		{`0`, 0, 0, "", "not a valid port (1-65535)", `"0"`},
		{`-5`, 0, 0, "", "not a valid port (1-65535)", `"-5"`},
		{`"99999999999999999999"`, 0, 0, "", "not a valid port (1-65535)", `"99999999999999999999"`},
		{`"10:5"`, 0, 0, "", "first port is larger", `"10:5"`},
		{`"1:2:3"`, 0, 0, "", "not a valid port range", `"1:2:3"`},
		{`":80"`, 0, 0, "", "not a valid port range", `":80"`},
		{`""`, 0, 0, "", "not a valid port", `""`},
		{`"a b"`, 0, 0, "", "not a valid port", `"a b"`},
		{`null`, 0, 0, "", "not a valid port", `"null"`},
		{`{}`, 0, 0, "", "not a valid port", `"{}"`},
		{`1.5`, 0, 0, "", "not a valid port", `"1.5"`},
	}
	for _, c := range cases {
		var p Port
		if err := json.Unmarshal([]byte(c.json), &p); err != nil {
			t.Errorf("%s: unmarshal: %v", c.json, err)
			continue
		}
		var errs ErrorList
		validatePort(&errs, "p", p)
		switch {
		case c.bad == "" && len(errs) > 0:
			t.Errorf("%s: unexpected problem %v", c.json, errs)
		case c.bad != "" && (len(errs) != 1 || !strings.Contains(errs[0].Detail, c.bad)):
			t.Errorf("%s: problems %v, want one containing %q", c.json, errs, c.bad)
		case c.bad == "" && (p.MinPort != c.min || p.MaxPort != c.max || p.PortName != c.name):
			t.Errorf("%s: got %d-%d %q", c.json, p.MinPort, p.MaxPort, p.PortName)
		}
		out, _ := json.Marshal(p)
		if string(out) != c.out {
			t.Errorf("%s: marshals as %s, want %s", c.json, out, c.out)
		}
	}
}

func TestProtocol(t *testing.T) {
	cases := []struct {
		json       string
		valid      bool
		ports      bool
		number     int
		marshalled string
	}{
		{`"TCP"`, true, true, 6, `"TCP"`},
		{`"UDP"`, true, true, 17, `"UDP"`},
		{`"SCTP"`, true, true, 132, `"SCTP"`},
		{`"ICMP"`, true, false, 1, `"ICMP"`},
		{`"ICMPv6"`, true, false, 58, `"ICMPv6"`},
		{`"UDPLite"`, true, false, 136, `"UDPLite"`},
		{`6`, true, true, 6, `6`},
		{`"17"`, true, true, 17, `17`},
		{`255`, true, false, 255, `255`},
		{`1`, true, false, 1, `1`},
		{`0`, false, false, 0, `0`},
		{`256`, false, false, 0, `256`},
		{`-1`, false, false, 0, `-1`},
		{`"tcp"`, false, false, 0, `"tcp"`},
		{`"icmpv6"`, false, false, 0, `"icmpv6"`},
		{`"GRE"`, false, false, 0, `"GRE"`},
		{`true`, false, false, 0, `"true"`},
	}
	for _, c := range cases {
		var p Protocol
		if err := json.Unmarshal([]byte(c.json), &p); err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		n, ok := p.Number()
		if ok != c.valid || p.Valid() != c.valid || p.SupportsPorts() != c.ports || (ok && n != c.number) {
			t.Errorf("%s: valid %v ports %v number %d", c.json, ok, p.SupportsPorts(), n)
		}
		out, _ := json.Marshal(p)
		if string(out) != c.marshalled {
			t.Errorf("%s: marshals as %s, want %s", c.json, out, c.marshalled)
		}
	}
}

func TestASNumber(t *testing.T) {
	cases := []struct {
		json string
		want uint32
		ok   bool
	}{
		{`64512`, 64512, true},
		{`"64512"`, 64512, true},
		{`"1.10"`, 65546, true},
		{`"0.0"`, 0, true},
		{`"65535.65535"`, 4294967295, true},
		{`4294967295`, 4294967295, true},
		{`4294967296`, 0, false},
		{`-1`, 0, false},
		{`"1.65536"`, 0, false},
		{`"1.2.3"`, 0, false},
		{`"AS100"`, 0, false},
	}
	for _, c := range cases {
		var a ASNumber
		if err := json.Unmarshal([]byte(c.json), &a); err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		got, ok := a.Uint32()
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: got %d %v, want %d %v", c.json, got, ok, c.want, c.ok)
		}
	}
}

func TestDuration(t *testing.T) {
	for in, ok := range map[string]bool{`"90s"`: true, `"1m30s"`: true, `"500ms"`: true, `"0"`: true, `"1h"`: true,
		`"90"`: false, `90`: false, `"soon"`: false, `""`: false, `true`: false} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		var errs ErrorList
		validateDuration(&errs, "d", &d)
		if (len(errs) == 0) != ok {
			t.Errorf("%s: problems %v, want valid=%v", in, errs, ok)
		}
	}
}

func TestLookupKind(t *testing.T) {
	cases := map[string]string{
		"ippool": "IPPool", "ippools": "IPPool", "pool": "IPPool", "ipp": "IPPool",
		"GlobalNetworkPolicy": "GlobalNetworkPolicy", "gnp": "GlobalNetworkPolicy",
		"networkpolicy": "NetworkPolicy", "policy": "NetworkPolicy", "np": "NetworkPolicy", "pol": "NetworkPolicy",
		"bgppeer": "BGPPeer", "bgpp": "BGPPeer", "bgpconfig": "BGPConfiguration",
		"wep": "WorkloadEndpoint", "hep": "HostEndpoint", "node": "Node", "no": "Node",
		"tier": "Tier", "tiers": "Tier", "profile": "Profile", "pro": "Profile",
		"networksets": "NetworkSet", "netset": "NetworkSet", "globalnetworkset": "GlobalNetworkSet",
		"felixconfig": "FelixConfiguration", "ipamconfig": "IPAMConfiguration",
	}
	for name, want := range cases {
		info, ok := LookupKind(name)
		if !ok || info.Kind != want {
			t.Errorf("LookupKind(%q) = %q, %v; want %q", name, info.Kind, ok, want)
		}
	}
	// Every short name is unique across kinds.
	seen := map[string]string{}
	for _, k := range Kinds() {
		for _, s := range append([]string{strings.ToLower(k.Kind), k.Plural}, k.ShortNames...) {
			if other, dup := seen[s]; dup && other != k.Kind {
				t.Errorf("%q names both %s and %s", s, other, k.Kind)
			}
			seen[s] = k.Kind
		}
	}
	namespaced := map[string]bool{"NetworkPolicy": true, "NetworkSet": true, "WorkloadEndpoint": true, "StagedNetworkPolicy": true, "StagedKubernetesNetworkPolicy": true}
	for _, k := range Kinds() {
		if !k.Internal && k.Namespaced != namespaced[k.Kind] {
			t.Errorf("%s: Namespaced = %v", k.Kind, k.Namespaced)
		}
	}
}

func TestPolicyTypesInference(t *testing.T) {
	r := []Rule{{Action: Allow}}
	cases := []struct {
		ingress, egress []Rule
		given, want     []PolicyType
	}{
		{nil, nil, nil, []PolicyType{PolicyTypeIngress}},
		{r, nil, nil, []PolicyType{PolicyTypeIngress}},
		{nil, r, nil, []PolicyType{PolicyTypeEgress}},
		{r, r, nil, []PolicyType{PolicyTypeIngress, PolicyTypeEgress}},
		{r, nil, []PolicyType{PolicyTypeEgress}, []PolicyType{PolicyTypeEgress}},
	}
	for i, c := range cases {
		np := &NetworkPolicy{Spec: NetworkPolicySpec{Ingress: c.ingress, Egress: c.egress, Types: c.given}}
		np.SetDefaults()
		gnp := &GlobalNetworkPolicy{Spec: GlobalNetworkPolicySpec{Ingress: c.ingress, Egress: c.egress, Types: c.given, PreDNAT: true}}
		gnp.SetDefaults()
		for _, got := range [][]PolicyType{np.Spec.Types, gnp.Spec.Types} {
			if strings.Join(toStrings(got), ",") != strings.Join(toStrings(c.want), ",") {
				t.Errorf("case %d: types %v, want %v", i, got, c.want)
			}
		}
		if np.Spec.Tier != "default" || gnp.Spec.Tier != "default" {
			t.Errorf("case %d: tier not defaulted", i)
		}
	}
}

func toStrings(ts []PolicyType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

func TestWorkloadEndpointName(t *testing.T) {
	cases := [][5]string{
		{"node1", "k8s", "my-nginx-b1337a", "eth0", "node1-k8s-my--nginx--b1337a-eth0"},
		{"host-a", "cni", "c0ffee", "eth0", "host--a-cni-c0ffee-eth0"},
		{"h", "openstack", "vm-1", "tap-1", "h-openstack-vm--1-tap--1"},
	}
	for _, c := range cases {
		if got := WorkloadEndpointName(c[0], c[1], c[2], c[3]); got != c[4] {
			t.Errorf("%v: got %q", c[:4], got)
		}
	}
}

func TestParsePeerIP(t *testing.T) {
	cases := []struct {
		in   string
		ip   string
		port int
		ok   bool
	}{
		{"192.0.2.1", "192.0.2.1", 0, true},
		{"192.0.2.1:179", "192.0.2.1", 179, true},
		{"[2001:db8::1]:1179", "2001:db8::1", 1179, true},
		{"2001:db8::1", "2001:db8::1", 0, true},
		{"192.0.2.1:0", "", 0, false},
		{"192.0.2.1:65536", "", 0, false},
		{"[2001:db8::1]", "", 0, false},
		{"host:179", "", 0, false},
		{"", "", 0, false},
	}
	for _, c := range cases {
		ip, port, err := ParsePeerIP(c.in)
		if (err == nil) != c.ok || (c.ok && (ip.String() != c.ip || port != c.port)) {
			t.Errorf("%q: got %v %d %v", c.in, ip, port, err)
		}
	}
}

// TestNoPanic feeds every kind odd but decodable values and checks that
// defaulting and validation return instead of panicking.
func TestNoPanic(t *testing.T) {
	specs := []string{
		`{}`,
		`{"cidr": "garbage", "blockSize": -3, "ipipMode": "x", "allowedUses": ["", "LoadBalancer"]}`,
		`{"cidr": "::/0", "blockSize": 200}`,
		`{"cidr": "0.0.0.0/0", "disabled": true}`,
		`{"ingress": [{}, {"icmp": {}, "notICMP": {"code": 1}, "protocol": null, "http": {"paths": [{}]}}], "egress": [{"source": {"services": {}}, "destination": {"services": {}}}]}`,
		`{"bgp": {}, "addresses": [{}], "orchRefs": [{}]}`,
		`{"peerIP": ":::::", "reachableBy": "x", "password": {}, "asNumber": "1.2.3.4"}`,
		`{"routeTableRanges": [], "kubeNodePortRanges": [], "bpfConntrackTimeouts": {}, "healthTimeoutOverrides": [{}]}`,
		`{"ipNetworks": ["", "/", "10.0.0.0/99"], "ipNATs": [{}], "ports": [{}]}`,
		`{"nets": ["", "::", "0/0"]}`,
		`{"order": 1e308, "defaultAction": ""}`,
	}
	for _, k := range Kinds() {
		for _, spec := range specs {
			r, _ := New(k.Kind)
			_ = json.Unmarshal([]byte(`{"metadata": {"name": "x", "namespace": "y"}, "spec": `+spec+`}`), r)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s with spec %s: panic: %v", k.Kind, spec, p)
					}
				}()
				r.SetDefaults()
				_ = Validate(r)
				_, _ = json.Marshal(r)
			}()
		}
	}
}
