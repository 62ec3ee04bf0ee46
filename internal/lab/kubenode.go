package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/servalnet/serval/internal/kubeapi"
	"github.com/servalnet/serval/internal/labimage"
	"github.com/servalnet/serval/internal/ociimage"
)

// A cluster lab's host is a Kubernetes node. Its processes (containerd,
// kubelet, kube-proxy, and the CNI plugins containerd calls) run in the
// host's network namespace and in a mount namespace of the node's own,
// kept in the file <run dir>/mnt/<host>, so that:
//
//   - /sys shows the host's network namespace (its interfaces), as `ip
//     netns exec` gives its commands, with the machine's cgroup
//     hierarchies mounted back under it;
//   - the paths kubelet and containerd use whatever their configuration
//     says (nodePrivateDirs) are the node's own directories, bind-mounted
//     over the real ones, so that nodes never see each other's pods,
//     volumes or network namespaces;
//   - the mounts kubelet makes for volumes are seen by containerd and runc,
//     which run in the same namespace.
//
// Each node has its own containerd (root, state and socket in
// <run dir>/nodes/<host>), its own kubelet (cgroup root svl-<lab>-<host>
// in every cgroup hierarchy) and kube-proxy in nftables mode beside
// Serval's own table. Images come from no registry: the lab builds them
// and imports them into each node's containerd.

// loopbackPlugin is the CNI plugin containerd runs for every pod's lo
// (Debian's containernetworking-plugins).
const loopbackPlugin = "/usr/lib/cni/loopback"

// SandboxImage is the pod sandbox image the nodes' containerd is
// configured with, kubelet's default.
const SandboxImage = labimage.PauseName

// nodePrivateDirs are paths kubelet, containerd and the CNI plugins use
// whatever their configuration says; each node has its own, bind-mounted
// over them.
var nodePrivateDirs = []string{"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/containerd", "/run/netns", "/var/lib/cni"}

func kubeletID(host string) string    { return "kubelet-" + host }
func containerdID(host string) string { return "containerd-" + host }
func kubeProxyID(host string) string  { return "kube-proxy-" + host }

func (l *Lab) nodeDir(host string) string { return filepath.Join(l.Dir, "nodes", host) }

// mountNSDir holds the files that keep the nodes' mount namespaces; it is
// a private mount point of its own, as unshare needs to bind them there.
func mountNSDir(labDir string) string { return filepath.Join(labDir, "mnt") }

func (l *Lab) nodeMountNS(host string) string { return filepath.Join(mountNSDir(l.Dir), host) }

// ContainerdSocket is the socket of host's containerd (for ctr
// --address).
func (l *Lab) ContainerdSocket(host string) string {
	return filepath.Join(l.nodeDir(host), "containerd.sock")
}

// startNodes makes every host a Kubernetes node and waits until all are
// Ready.
func (l *Lab) startNodes(ctx context.Context) error {
	agnhost, err := kubeapi.Binary("", "agnhost")
	if err != nil {
		return err
	}
	// Archives kept in the lab's directory: rebuilt when their binaries
	// change, imported into every node.
	images, err := labimage.WriteArchives(filepath.Join(l.Dir, "images"), labimage.Binaries{Pause: l.bin("serval-pause"), Agnhost: agnhost}, l.log)
	if err != nil {
		return err
	}
	for i := range l.State.Topology.Hosts {
		h := &l.State.Topology.Hosts[i]
		if err := l.startNode(ctx, h, images); err != nil {
			return fmt.Errorf("node %s: %w", h.Name, err)
		}
	}
	return l.nodesReady(ctx)
}

func (l *Lab) startNode(ctx context.Context, h *Host, images []labimage.Archive) error {
	if err := l.writeNodeFiles(h); err != nil {
		return err
	}
	if err := l.makeNodeMountNS(ctx, h.Name); err != nil {
		return err
	}
	if err := makeNodeCgroup(l.Netns(h.Name)); err != nil {
		return err
	}
	dir := l.nodeDir(h.Name)
	if err := l.startNodeDaemon(h.Name, containerdID(h.Name), []string{"containerd", "--config", filepath.Join(dir, "containerd.toml")}); err != nil {
		return err
	}
	if err := l.waitFor(ctx, "containerd of "+h.Name, containerdID(h.Name), time.Minute, func() error {
		_, err := l.ctr(ctx, h.Name, "version")
		return err
	}); err != nil {
		return err
	}
	if _, err := labimage.Import(ctx, ociimage.Containerd{Address: l.ContainerdSocket(h.Name), Namespace: "k8s.io"}, images, l.log.With("node", h.Name)); err != nil {
		return err
	}
	kubelet, err := kubeapi.Binary("", "kubelet")
	if err != nil {
		return err
	}
	if err := l.startNodeDaemon(h.Name, kubeletID(h.Name), []string{kubelet,
		"--config=" + filepath.Join(dir, "kubelet.yaml"),
		"--kubeconfig=" + l.KubeconfigPath(),
		"--hostname-override=" + h.Name,
		"--node-ip=" + nodeIPs(h),
		"--root-dir=/var/lib/kubelet",
		"--cert-dir=" + filepath.Join(dir, "pki"),
		"--v=1",
	}); err != nil {
		return err
	}
	if l.State.Topology.Cluster.KubeProxy == KubeProxyNone {
		return nil
	}
	proxy, err := kubeapi.Binary("", "kube-proxy")
	if err != nil {
		return err
	}
	return l.startNodeDaemon(h.Name, kubeProxyID(h.Name), []string{proxy,
		"--kubeconfig=" + l.KubeconfigPath(),
		"--hostname-override=" + h.Name,
		"--proxy-mode=" + l.State.Topology.Cluster.KubeProxy,
		// The conntrack table's size is the machine's, not a node's.
		"--conntrack-max-per-core=0",
		"--metrics-bind-address=127.0.0.1:10249",
		"--healthz-bind-address=127.0.0.1:10256",
		"--v=1",
	})
}

// nodeIPs is kubelet's --node-ip: the host's addresses on the fabric.
func nodeIPs(h *Host) string {
	ips := []string{prefixAddr(h.Address)}
	if h.Address6 != "" {
		ips = append(ips, prefixAddr(h.Address6))
	}
	return strings.Join(ips, ",")
}

func prefixAddr(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return s
	}
	return p.Addr().String()
}

// startNodeDaemon starts a daemon in host's network and mount namespaces.
func (l *Lab) startNodeDaemon(host, id string, argv []string) error {
	cmd := exec.Command("nsenter", append([]string{"--mount=" + l.nodeMountNS(host), "--net=" + filepath.Join(netnsDir, l.Netns(host)), "--"}, argv...)...)
	_, err := l.runDaemon(id, cmd)
	return err
}

// ctr runs containerd's client against host's containerd.
func (l *Lab) ctr(ctx context.Context, host string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", l.ContainerdSocket(host)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s on %s: %w: %s", strings.Join(args, " "), host, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// writeNodeFiles writes host's containerd and kubelet configurations, its
// CNI configuration and its CNI plugin directory.
func (l *Lab) writeNodeFiles(h *Host) error {
	dir := l.nodeDir(h.Name)
	for _, d := range []string{"cni/net.d", "cni/bin", "pki", "private"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("making the node's directories: %w", err)
		}
	}
	containerd, err := containerdConfig(dir)
	if err != nil {
		return err
	}
	kubelet, err := kubeletConfig(dir, l.Netns(h.Name), prefixAddr(h.Address), filepath.Join(l.kubeDir(), "ca.crt"), l.ContainerdSocket(h.Name))
	if err != nil {
		return err
	}
	cni, err := kubeNetConf(l.KubeconfigPath(), h.Name, MTUFile(l.AgentSocket(h.Name)), h.Address6 != "")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"containerd.toml": containerd, "kubelet.yaml": kubelet, "cni/net.d/10-serval.conflist": cni} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("writing the node's %s: %w", name, err)
		}
	}
	for name, target := range map[string]string{"serval": l.bin("serval"), "serval-ipam": l.bin("serval-ipam"), "loopback": loopbackPlugin} {
		link := filepath.Join(dir, "cni/bin", name)
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("linking the CNI plugin %s: %w", name, err)
		}
	}
	return nil
}

var containerdTemplate = template.Must(template.New("containerd.toml").Parse(`# containerd of one lab node, written by serval-lab.
version = 2
root = "{{.Dir}}/containerd/root"
state = "{{.Dir}}/containerd/state"
# Snapshotters this machine has no use for, kept from logging failures.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{{.Dir}}/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  # A node in a network namespace is not the machine: its containers must
  # not lower the oom score of what runs beside it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.Dir}}/cni/bin"
    conf_dir = "{{.Dir}}/cni/net.d"
    max_conf_num = 1
`))

// containerdConfig is the containerd configuration of the node whose
// directory is dir.
func containerdConfig(dir string) ([]byte, error) {
	var b bytes.Buffer
	err := containerdTemplate.Execute(&b, struct{ Dir, SandboxImage string }{dir, SandboxImage})
	if err != nil {
		return nil, fmt.Errorf("writing the containerd configuration: %w", err)
	}
	return b.Bytes(), nil
}

// kubeletConfig is the kubelet configuration of the node whose directory
// is dir, serving on address, its pods under the cgroup cgroupRoot.
func kubeletConfig(dir, cgroupRoot, address, clientCA, containerdSocket string) ([]byte, error) {
	c := kubeletv1beta1.KubeletConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		// This machine has cgroup v1, and no systemd as PID 1.
		FailCgroupV1: ptr.To(false),
		CgroupDriver: "cgroupfs",
		CgroupRoot:   "/" + cgroupRoot,
		// The machine's swap is not the node's to refuse.
		FailSwapOn:               ptr.To(false),
		ContainerRuntimeEndpoint: "unix://" + containerdSocket,
		Address:                  address,
		ReadOnlyPort:             0,
		HealthzBindAddress:       "127.0.0.1",
		// Only the API server (the admin's certificate, which the lab's
		// CA signed) may use the kubelet's API, and what it may do the
		// API server decides.
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: clientCA},
		},
		Authorization: kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		ClusterDomain: "cluster.local",
		// Pods get no resolv.conf of the machine's: the lab has no DNS.
		ResolverConfig: ptr.To(""),
		// Images are imported, never pulled: never collect them.
		ImageGCHighThresholdPercent: ptr.To[int32](100),
		ImageGCLowThresholdPercent:  ptr.To[int32](99),
		// Every node sees the whole machine's memory and disk: evict only
		// when the machine is nearly out of them.
		EvictionHard: map[string]string{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("writing the kubelet configuration: %w", err)
	}
	return append([]byte("# kubelet of one lab node, written by serval-lab.\n"), data...), nil
}
