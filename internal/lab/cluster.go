package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/kubeapi"
)

// A topology with a `kubernetes:` section is a whole Kubernetes cluster,
// not only an API server used as Serval's datastore: besides the
// datastore's etcd and kube-apiserver, the datastore namespace runs
// kube-controller-manager and kube-scheduler, and every host is a node
// (kubenode.go): containerd, kubelet and kube-proxy in the host's network
// namespace and a mount namespace of the node's own. Pods are created
// with kubectl (serval-lab kubectl) and run by kubelet; serval-cni wires
// them, called by containerd as in any cluster.

// Cluster is the `kubernetes:` section of a topology.
type Cluster struct {
	// KubeProxy is kube-proxy's mode on every node: "nftables" (the
	// default) or "none", no kube-proxy, so Services have no ClusterIPs
	// that work.
	KubeProxy string `json:"kubeProxy,omitempty"`
}

// KubeProxyNone is Cluster.KubeProxy of a cluster without kube-proxy.
const KubeProxyNone = "none"

// The control plane's daemon ids (pidfile, log), in the datastore
// namespace.
const (
	KubeControllerManagerID = "kube-controller-manager"
	KubeSchedulerID         = "kube-scheduler"
)

// clusterBinaries are the Kubernetes binaries a cluster lab runs besides
// kube-apiserver and kubectl, all from scripts/k8s-binaries.sh.
var clusterBinaries = []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "agnhost"}

// IsCluster says whether the lab is a whole Kubernetes cluster (a
// `kubernetes:` section).
func (t *Topology) IsCluster() bool { return t.Cluster != nil }

// validateCluster checks the `kubernetes:` section and fills in its
// defaults: it implies a kubernetes datastore.
func (t *Topology) validateCluster(bad func(path, format string, a ...any)) {
	c := t.Cluster
	if c == nil {
		return
	}
	switch t.Datastore.Kind {
	case "":
		t.Datastore.Kind = DatastoreKubernetes
	case DatastoreKubernetes:
	default:
		bad("datastore.kind", "%q: a lab with a kubernetes: section keeps its state in the cluster's API server (kind kubernetes, or leave datastore.kind out)", t.Datastore.Kind)
	}
	switch c.KubeProxy {
	case "":
		c.KubeProxy = "nftables"
	case "nftables", KubeProxyNone:
	default:
		bad("kubernetes.kubeProxy", "%q is not a kube-proxy mode here (nftables or none)", c.KubeProxy)
	}
	if t.Wire() {
		bad("fabric", "a lab with a kubernetes: section needs the bridge fabric (its control plane sits on it)")
	}
	if len(t.Workloads) > 0 {
		bad("workloads", "a lab with a kubernetes: section runs pods through its kubelets: create them with kubectl (serval-lab kubectl apply -f FILE), not as workloads")
	}
}

// preflightCluster lists what a cluster lab needs besides a kubernetes
// lab's API server.
func preflightCluster() []string {
	var missing []string
	for _, b := range clusterBinaries {
		if _, err := kubeapi.Binary("", b); err != nil {
			missing = append(missing, err.Error())
		}
	}
	for _, c := range []struct{ cmd, pkg string }{
		{"containerd", "containerd"}, {"ctr", "containerd"}, {"runc", "runc"},
		{"nsenter", "util-linux"}, {"unshare", "util-linux"},
	} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (install the Debian package %s, or run scripts/install-deps.sh)", c.cmd, c.pkg))
		}
	}
	if _, err := exec.LookPath(loopbackPlugin); err != nil {
		missing = append(missing, loopbackPlugin+" (containerd sets up each pod's lo with it; install the Debian package containernetworking-plugins)")
	}
	return missing
}

// clusterAPIServerArgs are what a cluster's API server needs beyond a
// datastore's: it reaches the kubelets (logs, exec, port-forward) with
// the admin's client certificate, which the kubelets' client CA signed,
// and publishes its own endpoints for the `kubernetes` Service.
func (l *Lab) clusterAPIServerArgs() []string {
	if !l.State.Topology.IsCluster() {
		return nil
	}
	d := l.kubeDir()
	return []string{
		"--kubelet-client-certificate=" + filepath.Join(d, "admin.crt"),
		"--kubelet-client-key=" + filepath.Join(d, "admin.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--endpoint-reconciler-type=lease",
	}
}

// startControlPlane starts kube-controller-manager and kube-scheduler in
// the datastore namespace, on the admin kubeconfig, and waits until the
// controller manager works (the default namespace has its service
// account, which pods need).
func (l *Lab) startControlPlane(ctx context.Context) error {
	if err := l.startControlPlaneDaemons(); err != nil {
		return err
	}
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	return l.waitFor(ctx, "kube-controller-manager (the default service account)", KubeControllerManagerID, 2*time.Minute, func() error {
		if l.daemonPID(KubeSchedulerID) == 0 {
			return fmt.Errorf("kube-scheduler exited:\n%s", tail(l.logPath(KubeSchedulerID), 15))
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(c, "default", metav1.GetOptions{})
		return err
	})
}

func (l *Lab) startControlPlaneDaemons() error {
	kc := l.KubeconfigPath()
	d := l.kubeDir()
	common := []string{
		"--kubeconfig=" + kc,
		"--leader-elect=false",
		// Their health endpoints, on loopback of the datastore namespace.
		"--bind-address=127.0.0.1",
		"--v=1",
	}
	daemons := []struct {
		id   string
		args []string
	}{
		{KubeControllerManagerID, append([]string{
			"--service-account-private-key-file=" + filepath.Join(d, "sa.key"),
			"--root-ca-file=" + filepath.Join(d, "ca.crt"),
			"--use-service-account-credentials=false",
			// Serval's IPAM gives pods their addresses: no node CIDRs.
			"--allocate-node-cidrs=false",
		}, common...)},
		{KubeSchedulerID, common},
	}
	for _, d := range daemons {
		bin, err := kubeapi.Binary("", d.id)
		if err != nil {
			return err
		}
		if _, err := l.startDaemon(l.Netns("datastore"), d.id, append([]string{bin}, d.args...)); err != nil {
			return err
		}
	}
	return nil
}

// nodesReady waits until every host's Node is Ready, as its kubelet
// reports it.
func (l *Lab) nodesReady(ctx context.Context) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	for _, h := range l.State.Topology.Hosts {
		err := l.waitFor(ctx, "node "+h.Name+" Ready", kubeletID(h.Name), 3*time.Minute, func() error {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			n, err := cs.CoreV1().Nodes().Get(c, h.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status != corev1.ConditionTrue {
						return fmt.Errorf("node %s is not Ready: %s: %s", h.Name, cond.Reason, cond.Message)
					}
					return nil
				}
			}
			return fmt.Errorf("node %s has no Ready condition yet", h.Name)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
