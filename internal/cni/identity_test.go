package cni

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/ipam"
)

func TestVethName(t *testing.T) {
	// Calico names the veth of pod default/nginx "cali" + sha1("default.nginx")[:11].
	if got := VethName("cali", "default.nginx"); got != "calic440f455693" {
		t.Errorf("VethName = %q, want calic440f455693", got)
	}
	if got := VethName("tap", "abc123"); got != "tap6367c48dd19" {
		t.Errorf("VethName = %q", got)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    *Args
		wantErr string
	}{
		{"", &Args{}, ""},
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc",
			&Args{PodNamespace: "prod", PodName: "web-0"}, ""},
		{"label.app=web;label.example.com/tier=front;IP=10.0.0.5,fd00::5",
			&Args{Labels: map[string]string{"app": "web", "example.com/tier": "front"},
				IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}}, ""},
		{"K8S_POD_NAME", nil, "not KEY=VALUE"},
		{"IP=10.0.0.300", nil, "not an IP address"},
		{"label.app=bad value", nil, `CNI_ARGS["app"]`},
		{"K8S_POD_NAME=Web_0", nil, "not a valid pod name"},
	}
	for _, tt := range tests {
		got, err := ParseArgs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseArgs(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestIdentityAndEndpoint(t *testing.T) {
	conf := &NetConf{Name: "net1", Labels: map[string]string{"env": "prod", "app": "from-conf"}, Profiles: []string{"base"},
		RuntimeConfig: RuntimeConfig{Labels: map[string]string{"app": "from-runtime"}, Profiles: []string{"rt", "base"}}}
	tests := []struct {
		name                                 string
		args                                 *Args
		ifName                               string
		wantVeth, wantName, wantNS, wantOrch string
		wantProfiles                         []string
		wantLabels                           map[string]string
	}{
		{"plain", &Args{Labels: map[string]string{"app": "from-args"}}, "eth0",
			VethName("cali", "c0ffee"), "host1-cni-c0ffee-eth0", "default", "cni",
			[]string{"base", "rt"},
			map[string]string{"env": "prod", "app": "from-args", LabelNamespace: "default", LabelOrchestrator: "cni"}},
		{"k8s", &Args{PodNamespace: "shop", PodName: "web-0"}, "eth0",
			VethName("cali", "shop.web-0"), "host1-k8s-web--0-eth0", "shop", "k8s",
			[]string{"kns.shop", "base", "rt"},
			map[string]string{"env": "prod", "app": "from-runtime", LabelNamespace: "shop", LabelOrchestrator: "k8s"}},
		{"second interface", &Args{}, "net1",
			VethName("cali", "c0ffee.net1"), "host1-cni-c0ffee-net1", "default", "cni",
			[]string{"base", "rt"},
			map[string]string{"env": "prod", "app": "from-runtime", LabelNamespace: "default", LabelOrchestrator: "cni"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := NewIdentity(conf, "host1", "c0ffee", tt.ifName, tt.args)
			if id.HostVeth != tt.wantVeth || id.EndpointName != tt.wantName || id.Namespace != tt.wantNS || id.Orchestrator != tt.wantOrch {
				t.Errorf("identity = %+v", id)
			}
			if id.Handle != "net1.c0ffee" {
				t.Errorf("handle = %q", id.Handle)
			}
			w := id.Endpoint(conf, tt.args)
			w.Spec.IPNetworks = []string{"10.0.0.1/32"}
			if err := api.Validate(w); err != nil {
				t.Errorf("endpoint does not validate: %v", err)
			}
			if !reflect.DeepEqual(w.Spec.Profiles, tt.wantProfiles) {
				t.Errorf("profiles = %v, want %v", w.Spec.Profiles, tt.wantProfiles)
			}
			if !reflect.DeepEqual(w.Labels, tt.wantLabels) {
				t.Errorf("labels = %v, want %v", w.Labels, tt.wantLabels)
			}
			if w.Spec.InterfaceName != tt.wantVeth || w.Spec.Endpoint != tt.ifName || w.Spec.ContainerID != "c0ffee" {
				t.Errorf("spec = %+v", w.Spec)
			}
		})
	}
}

// TestPodUIDRecorded: kubelet's K8S_POD_UID goes into the address's IPAM
// attributes, where serval-controllers tells a pod from its successor.
func TestPodUIDRecorded(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=6f1c", "6f1c"},
		{"K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0", ""},
	} {
		a, err := ParseArgs(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		attrs := NewIdentity(&NetConf{Name: "net1"}, "host1", "c1", "eth0", a).IPAMAttrs()
		if got, ok := attrs[ipam.AttrPodUID]; got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: pod-uid attribute %q (present %v), want %q", tc.args, got, ok, tc.want)
		}
	}
}
