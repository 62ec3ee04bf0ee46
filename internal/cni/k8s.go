package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/k8sconv"
	"github.com/servalnet/serval/internal/kube"
)

// PodAPI is what the plugins need of the Kubernetes API in kubernetes
// mode: the pod and its namespace (for their annotations), and a way to
// record the pod's addresses on it.
type PodAPI interface {
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	// PatchPodAnnotations sets the annotations with a value and removes
	// those with nil. With a resourceVersion the patch applies only to
	// that version of the pod (a conflict error otherwise).
	PatchPodAnnotations(ctx context.Context, namespace, name, resourceVersion string, set map[string]*string) error
}

// NewPodAPI connects to the API server named by the configuration's
// kubernetes.kubeconfig, $KUBECONFIG or the in-cluster service account.
func NewPodAPI(conf *NetConf, _ *slog.Logger) (PodAPI, error) {
	cfg, err := kube.RESTConfig(conf.Kubernetes.Kubeconfig, "serval-cni")
	if err != nil {
		return nil, err
	}
	cfg.Timeout = conf.EtcdConfig().RequestTimeout
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("Kubernetes client for %s: %w", cfg.Host, err)
	}
	return ClientPodAPI{cs}, nil
}

// ClientPodAPI is PodAPI over a client-go clientset.
type ClientPodAPI struct{ Client kubernetes.Interface }

// Pod reads a pod.
func (c ClientPodAPI) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	return c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
}

// Namespace reads a namespace.
func (c ClientPodAPI) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return c.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
}

// PatchPodAnnotations patches through the pod's status subresource, as
// Calico does, so that the plugin needs no right to change pod specs.
func (c ClientPodAPI) PatchPodAnnotations(ctx context.Context, namespace, name, resourceVersion string, set map[string]*string) error {
	meta := map[string]any{"annotations": set}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = c.Client.CoreV1().Pods(namespace).Patch(ctx, name, k8stypes.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// podEndpoints records a pod's endpoint on the pod itself: in Kubernetes
// the WorkloadEndpoint is derived from the pod and its annotations, never
// stored.
type podEndpoints struct{ pods PodAPI }

func (e podEndpoints) describe(id *Identity) string { return "pod " + id.Namespace + "/" + id.Pod }

func (e podEndpoints) owner(ctx context.Context, id *Identity) (endpointOwner, error) {
	pod, err := e.pods.Pod(ctx, id.Namespace, id.Pod)
	if apierrors.IsNotFound(err) {
		return endpointOwner{}, nil
	}
	if err != nil {
		return endpointOwner{}, fmt.Errorf("reading %s: %w", e.describe(id), err)
	}
	cid, ok := pod.Annotations[k8sconv.AnnotationContainerID]
	return endpointOwner{found: ok, container: cid, version: pod.ResourceVersion}, nil
}

func (e podEndpoints) write(ctx context.Context, id *Identity, wep *api.WorkloadEndpoint) (bool, error) {
	if len(wep.Spec.IPNetworks) == 0 {
		return false, fmt.Errorf("writing the addresses on %s: no addresses", e.describe(id))
	}
	prev, err := e.owner(ctx, id)
	if err != nil {
		return false, err
	}
	first, all := wep.Spec.IPNetworks[0], strings.Join(wep.Spec.IPNetworks, ",")
	err = e.pods.PatchPodAnnotations(ctx, id.Namespace, id.Pod, "", map[string]*string{
		k8sconv.AnnotationPodIP: &first, k8sconv.AnnotationPodIPs: &all, k8sconv.AnnotationContainerID: &id.ContainerID,
	})
	if err != nil {
		return false, fmt.Errorf("writing the addresses on %s: %w", e.describe(id), err)
	}
	return !prev.found || prev.container != id.ContainerID, nil
}

// remove empties the address annotations rather than deleting them, as
// Calico does: a pod that is still terminating then derives an endpoint
// without addresses, whatever its status still says.
func (e podEndpoints) remove(ctx context.Context, id *Identity, version string) error {
	none := ""
	err := e.pods.PatchPodAnnotations(ctx, id.Namespace, id.Pod, version, map[string]*string{
		k8sconv.AnnotationPodIP: &none, k8sconv.AnnotationPodIPs: &none, k8sconv.AnnotationContainerID: nil,
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing the addresses from %s: %w", e.describe(id), err)
	}
	return nil
}

// podIPAMRequest is what a pod and its namespace ask of IPAM through
// annotations: specific addresses, or pools (the pod's over the
// namespace's, both over the network configuration's).
type podIPAMRequest struct {
	IPs                  []netip.Addr
	IPv4Pools, IPv6Pools []string
}

// readPodIPAMRequest reads the IPAM annotations of the pod and its
// namespace. Errors name the object and the annotation.
func readPodIPAMRequest(ctx context.Context, pods PodAPI, namespace, name string) (*podIPAMRequest, error) {
	pod, err := pods.Pod(ctx, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	ns, err := pods.Namespace(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	where := "pod " + namespace + "/" + name
	if _, ok := pod.Annotations[k8sconv.AnnotationIPAddrsNoIPAM]; ok {
		return nil, fmt.Errorf("%s: annotation %s is not supported by Serval (see docs/KUBERNETES.md); remove it", where, k8sconv.AnnotationIPAddrsNoIPAM)
	}
	req := &podIPAMRequest{}
	var ips []string
	if err := jsonList(pod.Annotations, k8sconv.AnnotationIPAddrs, where, &ips); err != nil {
		return nil, err
	}
	for _, s := range ips {
		ad, err := parseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s: annotation %s: %q is not an IP address", where, k8sconv.AnnotationIPAddrs, s)
		}
		req.IPs = append(req.IPs, ad)
	}
	for _, src := range []struct {
		annotations map[string]string
		where       string
	}{{pod.Annotations, where}, {ns.Annotations, "namespace " + namespace}} {
		if req.IPv4Pools == nil {
			if err := jsonList(src.annotations, k8sconv.AnnotationIPv4Pools, src.where, &req.IPv4Pools); err != nil {
				return nil, err
			}
		}
		if req.IPv6Pools == nil {
			if err := jsonList(src.annotations, k8sconv.AnnotationIPv6Pools, src.where, &req.IPv6Pools); err != nil {
				return nil, err
			}
		}
	}
	if len(req.IPs) > 0 && (len(req.IPv4Pools) > 0 || len(req.IPv6Pools) > 0) {
		if _, podPools := pod.Annotations[k8sconv.AnnotationIPv4Pools]; podPools || pod.Annotations[k8sconv.AnnotationIPv6Pools] != "" {
			return nil, fmt.Errorf("%s: annotations %s and the pool annotations cannot be used together", where, k8sconv.AnnotationIPAddrs)
		}
		req.IPv4Pools, req.IPv6Pools = nil, nil // the namespace's pools do not restrict explicit addresses
	}
	return req, nil
}

// jsonList decodes annotation key, a JSON list of strings, into out; an
// absent annotation leaves out alone.
func jsonList(annotations map[string]string, key, where string, out *[]string) error {
	v, ok := annotations[key]
	if !ok {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(v), &l); err != nil {
		return fmt.Errorf("%s: annotation %s: %q is not a JSON list of strings: %w", where, key, v, err)
	}
	if l == nil {
		l = []string{}
	}
	*out = l
	return nil
}
