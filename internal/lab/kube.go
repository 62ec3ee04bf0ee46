package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/servalnet/serval/internal/crd"
	"github.com/servalnet/serval/internal/k8sconv"
	"github.com/servalnet/serval/internal/kubeapi"
)

// With datastore kind kubernetes, the lab's datastore is a Kubernetes API
// server: an embedded etcd member (daemon "datastore", as in an embedded
// lab) and kube-apiserver (daemon KubeAPIServerID) in the datastore
// namespace, the API server listening on the datastore's address so that
// the hosts reach it over the fabric. `up` installs Serval's CRDs, creates a
// Kubernetes Node per host (its BGP addresses and AS as Calico's
// annotations), the Namespaces the workloads name and each workload as a
// Pod bound to its host, which it then attaches with the CNI plugin in
// Kubernetes mode, as a kubelet would. There is no kubelet, scheduler or
// controller manager: nothing runs the pods' containers.

// DatastoreKubernetes is the datastore kind of a lab whose datastore is a
// Kubernetes API server.
const DatastoreKubernetes = "kubernetes"

// KubeAPIServerPort is where the lab's kube-apiserver listens, on the
// datastore's address.
const KubeAPIServerPort = 6443

// KubeAPIServerID is the daemon id (pidfile, log) of the lab's
// kube-apiserver.
const KubeAPIServerID = "kube-apiserver"

// PodImage is the image of the pods' one container. Nothing pulls or runs
// it: the lab has no kubelet.
const PodImage = "registry.invalid/serval-lab/workload:none"

// Kubernetes says whether the lab's datastore is a Kubernetes API server.
func (t *Topology) Kubernetes() bool { return t.Datastore.Kind == DatastoreKubernetes }

// KubeconfigPath is the admin kubeconfig of a kubernetes lab. Its server is
// on the datastore's address, which only the lab's namespaces reach: use it
// from there (serval-lab exec datastore kubectl --kubeconfig PATH ...), or
// through RESTConfig.
func (l *Lab) KubeconfigPath() string { return filepath.Join(l.Dir, "kubeconfig") }

func (l *Lab) kubeDir() string { return filepath.Join(l.Dir, "kube") }

func (l *Lab) kubeURL() string {
	p, _ := netip.ParsePrefix(l.State.Topology.Datastore.Address)
	return "https://" + net.JoinHostPort(p.Addr().String(), strconv.Itoa(KubeAPIServerPort))
}

// datastoreArgs are the flags servalctl and serval-node take to reach the
// lab's datastore.
func (l *Lab) datastoreArgs() []string {
	if l.State.Topology.Kubernetes() {
		return []string{"--datastore-type", DatastoreKubernetes, "--kubeconfig", l.KubeconfigPath()}
	}
	return []string{"--etcd-endpoints", l.State.EtcdEndpoint}
}

// datastoreDial dials from the datastore namespace: a socket stays in the
// namespace it was made in, so only the dial needs a thread there.
func (l *Lab) datastoreDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(l.Netns("datastore"), func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// RESTConfig is an admin client configuration of a kubernetes lab's API
// server, usable from any namespace: its connections are made from the
// lab's datastore namespace.
func (l *Lab) RESTConfig() (*rest.Config, error) {
	if !l.State.Topology.Kubernetes() {
		return nil, fmt.Errorf("lab %s has no Kubernetes API server (its datastore is %s)", l.Name, l.State.Topology.Datastore.Kind)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig of lab %s: %w", l.Name, err)
	}
	cfg.Dial = l.datastoreDial
	cfg.QPS, cfg.Burst = 100, 200
	cfg.UserAgent = "serval-lab"
	cfg.Timeout = 30 * time.Second
	return cfg, nil
}

// Clientset is a client of a kubernetes lab's API server (see RESTConfig).
func (l *Lab) Clientset() (*kubernetes.Clientset, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client of lab %s's API server: %w", l.Name, err)
	}
	return cs, nil
}

// startKubeAPIServer writes the API server's files (its serving
// certificate for the datastore's address), starts it on the etcd member
// that startDatastore started, waits until it is ready, writes the admin
// kubeconfig and installs Serval's CRDs.
func (l *Lab) startKubeAPIServer(ctx context.Context) error {
	if _, err := kubeapi.Binary("", "kube-apiserver"); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(l.State.Topology.Datastore.Address)
	if err != nil {
		return fmt.Errorf("datastore address %q: %w", l.State.Topology.Datastore.Address, err)
	}
	files, err := kubeapi.WriteFiles(l.kubeDir(), p.Addr().AsSlice())
	if err != nil {
		return err
	}
	if err := files.WriteKubeconfig(l.KubeconfigPath(), "serval-lab-"+l.Name, l.kubeURL()); err != nil {
		return err
	}
	if err := l.startKubeAPIServerDaemon(); err != nil {
		return err
	}
	if err := l.waitFor(ctx, "kube-apiserver at "+l.kubeURL(), KubeAPIServerID, 3*time.Minute, func() error {
		return files.Ready(ctx, l.kubeURL(), l.datastoreDial)
	}); err != nil {
		return err
	}
	return l.installCRDs(ctx)
}

func (l *Lab) startKubeAPIServerDaemon() error {
	bin, err := kubeapi.Binary("", "kube-apiserver")
	if err != nil {
		return err
	}
	files, err := l.kubeFiles()
	if err != nil {
		return err
	}
	p, _ := netip.ParsePrefix(l.State.Topology.Datastore.Address)
	etcd := DatastoreMembers(l.State.Topology)[0].ClientURL
	argv := append([]string{bin}, files.Args(etcd, p.Addr().AsSlice(), KubeAPIServerPort, l.clusterAPIServerArgs())...)
	_, err = l.startDaemon(l.Netns("datastore"), KubeAPIServerID, argv)
	return err
}

// kubeFiles names the files startKubeAPIServer wrote (for the command
// line; the token and CA are in the kubeconfig).
func (l *Lab) kubeFiles() (*kubeapi.Files, error) {
	d := l.kubeDir()
	f := &kubeapi.Files{
		Dir: d, CAFile: filepath.Join(d, "ca.crt"), CertFile: filepath.Join(d, "apiserver.crt"), KeyFile: filepath.Join(d, "apiserver.key"),
		SAPublicFile: filepath.Join(d, "sa.pub"), SAPrivateFile: filepath.Join(d, "sa.key"), TokenFile: filepath.Join(d, "tokens.csv"),
	}
	for _, p := range []string{f.CAFile, f.CertFile, f.KeyFile, f.SAPublicFile, f.SAPrivateFile, f.TokenFile} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("kube-apiserver of lab %s: %w", l.Name, err)
		}
	}
	return f, nil
}

// kubeReady asks the lab's API server for /readyz.
func (l *Lab) kubeReady(ctx context.Context) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("readiness of kube-apiserver at %s: %w: %s", l.kubeURL(), err, body)
	}
	return nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates the CRD of every Serval kind and waits until each is
// Established.
func (l *Lab) installCRDs(ctx context.Context) error {
	cfg, err := l.RESTConfig()
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client of lab %s's API server: %w", l.Name, err)
	}
	defs, err := crd.All()
	if err != nil {
		return fmt.Errorf("Serval's CRDs: %w", err)
	}
	for _, def := range defs {
		obj, err := def.Unstructured()
		if err != nil {
			return fmt.Errorf("CRD %s: %w", def.Metadata.Name, err)
		}
		if _, err := dc.Resource(crdResource).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", def.Metadata.Name, err)
		}
	}
	for _, def := range defs {
		name := def.Metadata.Name
		if err := l.waitFor(ctx, "CRD "+name+" Established", KubeAPIServerID, 2*time.Minute, func() error {
			u, err := dc.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
			return errors.New("not Established yet")
		}); err != nil {
			return err
		}
	}
	l.log.Info("Serval's CRDs installed", "count", len(defs))
	return nil
}

// createKubeNodes creates a Kubernetes Node per host, with its addresses
// and AS as the annotations Calico's node writes (the Serval Node is
// derived from it). No kubelet runs: the Node has no status.
func (l *Lab) createKubeNodes(ctx context.Context) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	for _, h := range l.State.Topology.Hosts {
		ann := map[string]string{k8sconv.AnnotationNodeIPv4Address: h.Address}
		if h.Address6 != "" {
			ann[k8sconv.AnnotationNodeIPv6Address] = h.Address6
		}
		if h.ASNumber != 0 {
			ann[k8sconv.AnnotationNodeASNumber] = strconv.FormatUint(uint64(h.ASNumber), 10)
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        h.Name,
			Labels:      map[string]string{"kubernetes.io/hostname": h.Name, "kubernetes.io/os": "linux"},
			Annotations: ann,
		}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating the Kubernetes Node %s: %w", h.Name, err)
		}
	}
	return nil
}

// ensureNamespace creates namespace ns, with its default ServiceAccount
// (no controller manager makes it, and a Pod needs it), when missing.
func ensureNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the default ServiceAccount of namespace %s: %w", ns, err)
	}
	return nil
}

// createNamespaces creates the namespaces the workloads name.
func (l *Lab) createNamespaces(ctx context.Context) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	set := map[string]bool{}
	for _, w := range l.State.Topology.Workloads {
		set[w.Namespace] = true
	}
	nss := make([]string, 0, len(set))
	for ns := range set {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		if err := ensureNamespace(ctx, cs, ns); err != nil {
			return err
		}
	}
	return nil
}

// podOf is the Pod of workload w: bound to its host, with its labels and,
// when it asks for an address, Calico's ipAddrs annotation.
func podOf(w *Workload) (*corev1.Pod, error) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: PodName(w.Name), Namespace: w.Namespace, Labels: w.Labels},
		Spec: corev1.PodSpec{
			NodeName:                     w.Host,
			AutomountServiceAccountToken: new(bool),
			Containers:                   []corev1.Container{{Name: "workload", Image: PodImage}},
		},
	}
	if w.Address != "" {
		b, err := json.Marshal([]string{w.Address})
		if err != nil {
			return nil, err
		}
		p.Annotations = map[string]string{k8sconv.AnnotationIPAddrs: string(b)}
	}
	return p, nil
}

// createPod creates workload w's Pod (its namespace first, when missing).
func (l *Lab) createPod(ctx context.Context, w *Workload) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, cs, w.Namespace); err != nil {
		return err
	}
	p, err := podOf(w)
	if err != nil {
		return fmt.Errorf("pod of workload %s: %w", w.Name, err)
	}
	if _, err := cs.CoreV1().Pods(w.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating pod %s/%s of workload %s: %w", w.Namespace, p.Name, w.Name, err)
	}
	return nil
}

// deletePod deletes workload w's Pod at once (no kubelet would confirm a
// graceful deletion); a pod already gone is fine.
func (l *Lab) deletePod(ctx context.Context, w *Workload) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	err = cs.CoreV1().Pods(w.Namespace).Delete(ctx, PodName(w.Name), metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting pod %s/%s of workload %s: %w", w.Namespace, PodName(w.Name), w.Name, err)
	}
	return nil
}
