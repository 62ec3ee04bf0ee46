package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/servalnet/serval/internal/lab"
)

// propNamespace is the namespace of the workloads of a lab on the
// kubernetes datastore, and of the NetworkPolicies written to it.
const propNamespace = "bench"

// kubePropPolicy is the NetworkPolicy of change i: the bench pods accept
// TCP to port from the bench pods of their namespace. Translated as Calico
// translates it (tier default, order 1000), it comes before the base
// GlobalNetworkPolicy (no order: last), which accepts port 7 only.
func kubePropPolicy(i, port int) *networkingv1.NetworkPolicy {
	tcp := networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(int32(port)))}
	proto := "TCP"
	tcp.Protocol = ptr(corev1.Protocol(proto))
	sel := metav1.LabelSelector{MatchLabels: map[string]string{"bench": "prop"}}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-open-%d", i), Namespace: propNamespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: sel,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &sel}},
				Ports: []networkingv1.NetworkPolicyPort{tcp},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// RunKubePolicyWriter is `servalbench policy-writer --kubeconfig PATH`:
// as RunPolicyWriter, but each change is a networking.k8s.io/v1
// NetworkPolicy created with client-go on the lab's API server.
func RunKubePolicyWriter(ctx context.Context, kubeconfig string, in io.Reader, out io.Writer) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.UserAgent = "servalbench-policy-writer"
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	// One request first, so that the connection is open before the
	// first timed write.
	if _, err := cs.NetworkingV1().NetworkPolicies(propNamespace).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return fmt.Errorf("listing NetworkPolicies in %s: %w", propNamespace, err)
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var i, port int
		if _, err := fmt.Sscan(sc.Text(), &i, &port); err != nil {
			return fmt.Errorf("reading %q: %w", sc.Text(), err)
		}
		p := kubePropPolicy(i, port)
		start := time.Now()
		if _, err := cs.NetworkingV1().NetworkPolicies(propNamespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating NetworkPolicy %s/%s: %w", p.Namespace, p.Name, err)
		}
		fmt.Fprintln(out, start.UnixNano())
	}
	return sc.Err()
}

// labKubeconfig is the admin kubeconfig of a lab on the kubernetes
// datastore (what `serval-lab kubeconfig` prints).
func labKubeconfig(l *lab.Lab) string { return l.KubeconfigPath() }
