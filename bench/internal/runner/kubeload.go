package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/crd"
	"github.com/servalnet/serval/internal/datastore"
	kubeds "github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/k8sconv"
	"github.com/servalnet/serval/internal/kubeapi"
	"github.com/servalnet/serval/internal/netconst"
	"github.com/servalnet/serval/internal/synthload"
)

// Datastores of an agent load.
const (
	dsEtcd       = ""
	dsKubernetes = "kubernetes"
)

// kubeNamespaces is how many namespaces the pods are spread over, as
// synthload spreads its endpoints (ns0..ns19).
const kubeNamespaces = 20

// kubeWriters is how many goroutines write the pods.
const kubeWriters = 32

// localIface is the host-side interface of local endpoint i: the etcd load
// names it in the endpoint, a pod's is derived from its namespace and name
// as the CNI plugin names it.
func localIface(a agentLoadSpec, i int) string {
	if a.Datastore == dsKubernetes {
		ns, pod := kubePodName(i)
		return netconst.VethName(netconst.DefaultInterfacePrefix, ns+"."+pod)
	}
	return fmt.Sprintf("calib%d", i)
}

func kubePodName(i int) (ns, name string) {
	return fmt.Sprintf("ns%d", i%kubeNamespaces), fmt.Sprintf("w%d", i)
}

// kubePod is the i-th pod of the load, on node: the same labels and
// address as synthload.Endpoint(i, node) (the address as the CNI plugin's
// podIPs annotation, which is what the kubelet has not yet copied into the
// status when a pod has just started), one container with a port.
func kubePod(i int, node string) *corev1.Pod {
	ns, name := kubePodName(i)
	ep := synthload.Endpoint(i, node)
	ip := ep.Spec.IPNetworks[0]
	ip = ip[:len(ip)-len("/32")]
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"app": ep.Labels["app"], "role": ep.Labels["role"]},
			Annotations: map[string]string{
				k8sconv.AnnotationPodIP:       ip + "/32",
				k8sconv.AnnotationPodIPs:      ip + "/32",
				k8sconv.AnnotationContainerID: fmt.Sprintf("%064x", i),
			}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
	}
}

// kubeLoad is a running kube-apiserver holding an agent load.
type kubeLoad struct {
	cluster *kubeapi.Cluster
	ds      datastore.Interface // Serval's kinds on the API server
	cfg     *rest.Config
}

func (k *kubeLoad) close() {
	if k.ds != nil {
		_ = k.ds.Close()
	}
	_ = k.cluster.Stop()
}

// writeKubeLoad starts a kube-apiserver (with its own etcd) on this
// namespace's loopback, installs Serval's CRDs and writes the load: the
// namespaces with their default ServiceAccounts, the local Node, a Pod per
// endpoint (client-go, protobuf, kubeWriters goroutines) and the policies
// as GlobalNetworkPolicy custom resources (the same ones the etcd load
// writes, through the kubernetes datastore). It returns how long the
// writing took, the API server's start excluded.
func writeKubeLoad(ctx context.Context, a agentLoadSpec, node string, log *slog.Logger) (*kubeLoad, time.Duration, error) {
	c, err := kubeapi.New(ctx, kubeapi.Options{Logger: log})
	if err != nil {
		return nil, 0, fmt.Errorf("starting kube-apiserver: %w", err)
	}
	k := &kubeLoad{cluster: c}
	ok := false
	defer func() {
		if !ok {
			k.close()
		}
	}()
	k.cfg = c.RESTConfig()
	k.cfg.QPS, k.cfg.Burst = 100000, 100000
	k.cfg.UserAgent = "servalbench"
	if err := installCRDs(ctx, k.cfg); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	pcfg := rest.CopyConfig(k.cfg)
	pcfg.ContentType = "application/vnd.kubernetes.protobuf"
	pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := k8s.NewForConfig(pcfg)
	if err != nil {
		return nil, 0, fmt.Errorf("kubernetes client: %w", err)
	}
	for n := 0; n < kubeNamespaces; n++ {
		ns := fmt.Sprintf("ns%d", n)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, 0, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
		// No controller manager makes it; the ServiceAccount admission
		// plugin refuses pods without it.
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, 0, fmt.Errorf("creating service account %s/default: %w", ns, err)
		}
	}
	kn := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Annotations: map[string]string{
		"projectcalico.org/IPv4Address": "10.99.0.1/24"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, kn, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, 0, fmt.Errorf("creating node %s: %w", node, err)
	}
	pods := make(chan int, 256)
	errc := make(chan error, kubeWriters)
	var wg sync.WaitGroup
	for range kubeWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pods {
				n := node
				if i >= a.Local {
					n = fmt.Sprintf("host%d", i%500)
				}
				p := kubePod(i, n)
				if _, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					errc <- fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
					return
				}
			}
		}()
	}
	var werr error
	n := a.Local + a.Remote
feed:
	for i := 0; i < n; i++ {
		select {
		case pods <- i:
		case werr = <-errc:
			break feed
		}
	}
	close(pods)
	if werr != nil {
		go func() {
			for range pods { // what the writers left after a failure
			}
		}()
	}
	wg.Wait()
	if werr == nil {
		select {
		case werr = <-errc:
		default:
		}
	}
	if werr != nil {
		return nil, 0, werr
	}
	k.ds, err = kubeds.New(k.cfg, log)
	if err != nil {
		return nil, 0, err
	}
	spec := synthload.Spec{Node: node, Policies: a.Policies, Writers: kubeWriters}
	if err := synthload.Write(ctx, k.ds, spec); err != nil {
		return nil, 0, err
	}
	ok = true
	return k, time.Since(start), nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates the CRD of every Serval kind and waits until the
// API server serves each.
func installCRDs(ctx context.Context, cfg *rest.Config) error {
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	all, err := crd.All()
	if err != nil {
		return err
	}
	for _, d := range all {
		m, err := d.Unstructured()
		if err != nil {
			return err
		}
		if _, err := dc.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", d.Metadata.Name, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, info := range api.Kinds() {
		gvr := crd.GVR(info)
		for {
			_, err := dc.Resource(gvr).List(wctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if wctx.Err() != nil {
				return fmt.Errorf("CRD of %s not served: %w", info.Kind, errors.Join(err, wctx.Err()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
