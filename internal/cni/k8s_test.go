package cni

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/k8sconv"
)

const k8sConf = `{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"serval","nodename":"host1",
	"ipam_lock_file":"/tmp/svt-cni-unit-ipam.lock","mtu_file":"/dev/null/serval-mtu",
	"datastore_type":"kubernetes","ipam":{"type":"serval-ipam","assign_ipv6":"true"}}`

const podArgs = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"

// k8sRig is a rig whose plugins reach a fake Kubernetes API holding
// namespace shop and pod shop/web-0 with the given annotations.
func k8sRig(t *testing.T, podAnn, nsAnn map[string]string) (*rig, *fake.Clientset) {
	t.Helper()
	r := newRig(t, 4, 4)
	cs := fake.NewSimpleClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: nsAnn}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Annotations: podAnn},
			Spec: corev1.PodSpec{NodeName: "host1"}},
	)
	pods := func(*NetConf, *slog.Logger) (PodAPI, error) { return ClientPodAPI{cs}, nil }
	r.plugin.OpenPods = pods
	r.plugin.IPAM.(*InProcessIPAM).Plugin.OpenPods = pods
	return r, cs
}

func podAnnotations(t *testing.T, cs *fake.Clientset) map[string]string {
	t.Helper()
	p, err := cs.CoreV1().Pods("shop").Get(context.Background(), "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Annotations
}

func TestKubernetesModeRecordsOnThePod(t *testing.T) {
	r, cs := k8sRig(t, map[string]string{"keep": "me"}, nil)
	if err := r.cmd(r.plugin.Add, k8sConf, "c1", podArgs); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	ann := podAnnotations(t, cs)
	want := map[string]string{"keep": "me", k8sconv.AnnotationPodIP: "10.65.0.1/32",
		k8sconv.AnnotationPodIPs: "10.65.0.1/32,fd00:65::1/128", k8sconv.AnnotationContainerID: "c1"}
	if fmt.Sprint(ann) != fmt.Sprint(want) {
		t.Errorf("pod annotations after ADD:\n%v\nwant\n%v", ann, want)
	}
	if weps := r.endpoints(t); len(weps) != 0 {
		t.Errorf("kubernetes mode stored %d WorkloadEndpoints; the pod is the endpoint", len(weps))
	}
	// The endpoint the agent derives from the annotated pod names the
	// interface this ADD made and carries its addresses.
	pod, err := cs.CoreV1().Pods("shop").Get(context.Background(), "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, ok, err := k8sconv.PodToWorkloadEndpoint(pod)
	if err != nil || !ok {
		t.Fatalf("no endpoint derived from the pod: %v", err)
	}
	if w.Name != "host1-k8s-web--0-eth0" || w.Spec.InterfaceName != VethName("cali", "shop.web-0") || w.Spec.ContainerID != "c1" ||
		fmt.Sprint(w.Spec.IPNetworks) != "[10.65.0.1/32 fd00:65::1/128]" {
		t.Errorf("derived endpoint %s on %s of %s with %v; want the attachment's", w.Name, w.Spec.InterfaceName, w.Spec.ContainerID, w.Spec.IPNetworks)
	}
	if _, ok := r.dp.links[w.Spec.InterfaceName]; !ok {
		t.Errorf("the derived endpoint's interface %s is not the veth ADD made (%v)", w.Spec.InterfaceName, r.dp.links)
	}
	// A second sandbox of the same pod takes over; the DEL of the first
	// leaves the second's addresses and veth alone.
	if err := r.cmd(r.plugin.Add, k8sConf, "c2", podArgs); err != nil {
		t.Fatalf("ADD c2: %v", err)
	}
	if err := r.cmd(r.plugin.Del, k8sConf, "c1", podArgs); err != nil {
		t.Fatalf("DEL c1: %v", err)
	}
	if ann := podAnnotations(t, cs); ann[k8sconv.AnnotationContainerID] != "c2" || ann[k8sconv.AnnotationPodIPs] == "" {
		t.Errorf("DEL of the old sandbox changed the new one's annotations: %v", ann)
	}
	if _, ok := r.dp.links[VethName("cali", "shop.web-0")]; !ok {
		t.Errorf("DEL of the old sandbox removed the pod's veth")
	}
	if err := r.cmd(r.plugin.Del, k8sConf, "c2", podArgs); err != nil {
		t.Fatalf("DEL c2: %v", err)
	}
	wantAfter := map[string]string{"keep": "me", k8sconv.AnnotationPodIP: "", k8sconv.AnnotationPodIPs: ""}
	if ann := podAnnotations(t, cs); fmt.Sprint(ann) != fmt.Sprint(wantAfter) {
		t.Errorf("annotations after the last DEL = %v, want %v (addresses emptied, container removed)", ann, wantAfter)
	}
	if n := r.ipam.held(); n != 0 || len(r.dp.links) != 0 {
		t.Errorf("after DEL: %d addresses held, links %v", n, r.dp.links)
	}
	// A DEL after the pod is gone (kubelet retries) succeeds.
	if err := cs.CoreV1().Pods("shop").Delete(context.Background(), "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd(r.plugin.Del, k8sConf, "c2", podArgs); err != nil {
		t.Errorf("DEL of a deleted pod: %v", err)
	}
}

func TestKubernetesModeIPAMAnnotations(t *testing.T) {
	tests := []struct {
		name         string
		pod, ns      map[string]string
		args         string
		wantIPs      string // the pod's podIPs annotation after ADD
		wantPools    string // the pools AutoAssign was given
		wantErrParts []string
	}{
		{name: "requested addresses", pod: map[string]string{k8sconv.AnnotationIPAddrs: `["10.65.0.3","fd00:65::9"]`},
			wantIPs: "10.65.0.3/32,fd00:65::9/128"},
		{name: "namespace pools", ns: map[string]string{k8sconv.AnnotationIPv4Pools: `["blue"]`, k8sconv.AnnotationIPv6Pools: `["blue6"]`},
			wantIPs: "10.65.0.1/32,fd00:65::1/128", wantPools: "[[blue] [blue6]]"},
		{name: "pod pools win over the namespace's", pod: map[string]string{k8sconv.AnnotationIPv4Pools: `["10.65.0.0/24"]`},
			ns: map[string]string{k8sconv.AnnotationIPv4Pools: `["blue"]`}, wantIPs: "10.65.0.1/32,fd00:65::1/128", wantPools: "[[10.65.0.0/24] []]"},
		{name: "bad JSON names pod and annotation", pod: map[string]string{k8sconv.AnnotationIPAddrs: `10.65.0.3`},
			wantErrParts: []string{"pod shop/web-0", k8sconv.AnnotationIPAddrs, "JSON list"}},
		{name: "bad address", pod: map[string]string{k8sconv.AnnotationIPAddrs: `["ten"]`},
			wantErrParts: []string{"pod shop/web-0", `"ten" is not an IP address`}},
		{name: "bad namespace pools", ns: map[string]string{k8sconv.AnnotationIPv6Pools: `{}`},
			wantErrParts: []string{"namespace shop", k8sconv.AnnotationIPv6Pools}},
		{name: "addresses and pools together", pod: map[string]string{k8sconv.AnnotationIPAddrs: `["10.65.0.3"]`, k8sconv.AnnotationIPv4Pools: `["blue"]`},
			wantErrParts: []string{"cannot be used together"}},
		{name: "addresses without IPAM refused", pod: map[string]string{k8sconv.AnnotationIPAddrsNoIPAM: `["192.0.2.1"]`},
			wantErrParts: []string{k8sconv.AnnotationIPAddrsNoIPAM, "not supported"}},
		{name: "no pod arguments", args: "IgnoreUnknown=1",
			wantErrParts: []string{"K8S_POD_NAMESPACE and K8S_POD_NAME"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, cs := k8sRig(t, tc.pod, tc.ns)
			args := podArgs
			if tc.args != "" {
				args = tc.args
			}
			err := r.cmd(r.plugin.Add, k8sConf, "c1", args)
			if len(tc.wantErrParts) > 0 {
				if err == nil {
					t.Fatalf("ADD succeeded, want an error naming %v", tc.wantErrParts)
				}
				for _, p := range tc.wantErrParts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not name %q", err, p)
					}
				}
				if n := r.ipam.held(); n != 0 || len(r.dp.links) != 0 {
					t.Errorf("a refused ADD left %d addresses and links %v", n, r.dp.links)
				}
				return
			}
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if got := podAnnotations(t, cs)[k8sconv.AnnotationPodIPs]; got != tc.wantIPs {
				t.Errorf("podIPs = %q, want %q", got, tc.wantIPs)
			}
			if tc.wantPools != "" && fmt.Sprint(r.ipam.pools) != tc.wantPools {
				t.Errorf("pools = %v, want %s", r.ipam.pools, tc.wantPools)
			}
		})
	}
}

func TestDatastoreTypeChecked(t *testing.T) {
	for _, tc := range []struct{ conf, env, want string }{
		{conf: `"datastore_type":"consul",`, want: `datastore_type: datastore type "consul": want etcdv3 or kubernetes`},
		{env: "zookeeper", want: `datastore type "zookeeper"`},
		{conf: `"kubernetes":{"kubeconfig":5},`, want: "kubernetes.kubeconfig"},
	} {
		t.Setenv(datastore.EnvType, tc.env)
		_, err := LoadNetConf([]byte(`{"cniVersion":"1.0.0","name":"n",` + tc.conf + `"type":"serval","ipam":{"type":"serval-ipam"}}`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s%s: err = %v, want %q", tc.conf, tc.env, err, tc.want)
		}
	}
}
