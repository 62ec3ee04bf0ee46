package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// NetworkName is the CNI network every workload joins.
const NetworkName = "serval"

// NetConf is the CNI network configuration a container runtime on host
// would hand serval-cni, with Calico's keys. Workload labels and profiles do
// not go here but in runtimeConfig (see runtimeConf), as a runtime passes
// per-container data; the plugin declares those capabilities.
//
// With mtuFile set, the mtu is left to the plugin, which reads it from the
// file host's serval-node writes (the fabric's less the overlay's
// overhead); without, it is 1500.
func NetConf(etcd, host string, mtuFile ...string) ([]byte, error) {
	f := ""
	if len(mtuFile) > 0 {
		f = mtuFile[0]
	}
	return netConf(etcd, host, f, false)
}

// netConf is NetConf, with IPv6 addresses too when ipv6 is set (a
// dual-stack host).
func netConf(etcd, host, mtuFile string, ipv6 bool) ([]byte, error) {
	ipam := map[string]any{"type": "serval-ipam"}
	if ipv6 {
		ipam["assign_ipv6"] = "true"
	}
	plugin := map[string]any{
		"type":           "serval",
		"etcd_endpoints": etcd,
		"nodename":       host,
		"mtu":            1500,
		"log_level":      "info",
		"capabilities":   map[string]bool{"labels": true, "profiles": true},
		"ipam":           ipam,
	}
	if mtuFile != "" {
		plugin["mtu"], plugin["mtu_file"] = 0, mtuFile
	}
	return netConfList(plugin)
}

// kubeNetConf is the CNI network configuration of a kubernetes lab's host:
// Calico's Kubernetes mode (datastore_type kubernetes, the API server's
// kubeconfig), as a Calico install writes it for the kubelet.
func kubeNetConf(kubeconfig, host, mtuFile string, ipv6 bool) ([]byte, error) {
	ipam := map[string]any{"type": "serval-ipam"}
	if ipv6 {
		ipam["assign_ipv6"] = "true"
	}
	plugin := map[string]any{
		"type":           "serval",
		"datastore_type": DatastoreKubernetes,
		"kubernetes":     map[string]any{"kubeconfig": kubeconfig},
		"nodename":       host,
		"mtu":            0,
		"mtu_file":       mtuFile,
		"log_level":      "info",
		"ipam":           ipam,
	}
	return netConfList(plugin)
}

func netConfList(plugin map[string]any) ([]byte, error) {
	list := map[string]any{
		"cniVersion": "1.0.0",
		"name":       NetworkName,
		"plugins":    []any{plugin},
	}
	return json.MarshalIndent(list, "", "  ")
}

// ContainerID is the CNI container id of workload name in lab lab.
func ContainerID(lab, name string) string {
	return "svl-" + lab + "-" + strings.ToLower(name)
}

// PodName is the pod name a workload gets when it sits in a namespace: its
// name, made a valid DNS name.
func PodName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

func (l *Lab) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{l.opts.BinDir}, filepath.Join(l.Dir, "cni-cache"), nil)
}

func (l *Lab) runtimeConf(w *Workload) *libcni.RuntimeConf {
	rc := &libcni.RuntimeConf{
		ContainerID: ContainerID(l.Name, w.Name),
		NetNS:       filepath.Join(netnsDir, l.Netns(w.Name)),
		IfName:      "eth0",
	}
	if l.State.Topology.Kubernetes() {
		// As a kubelet calls it: the pod says the rest (labels, address
		// through its ipAddrs annotation).
		rc.Args = [][2]string{
			{"K8S_POD_NAMESPACE", w.Namespace},
			{"K8S_POD_NAME", PodName(w.Name)},
			{"K8S_POD_INFRA_CONTAINER_ID", rc.ContainerID},
		}
		return rc
	}
	if w.Address != "" {
		// Calico's way to ask for a given address.
		rc.Args = append(rc.Args, [2]string{"IP", w.Address})
	}
	if w.Namespace != "" && w.Namespace != "default" {
		// A workload in a namespace is a pod of that namespace, as
		// Kubernetes' runtime would say it; the plugin then gives it the
		// namespace's labels and the kns.<namespace> profile, as Calico.
		rc.Args = append(rc.Args,
			[2]string{"K8S_POD_NAMESPACE", w.Namespace},
			[2]string{"K8S_POD_NAME", PodName(w.Name)})
	}
	rc.CapabilityArgs = map[string]any{}
	if len(w.Labels) > 0 {
		rc.CapabilityArgs["labels"] = w.Labels
	}
	if len(w.Profiles) > 0 {
		rc.CapabilityArgs["profiles"] = w.Profiles
	}
	return rc
}

func (l *Lab) netConfList(w *Workload) (*libcni.NetworkConfigList, error) {
	ipv6 := l.State.Topology.Host(w.Host).Address6 != ""
	data, err := netConf(l.State.EtcdEndpoint, w.Host, MTUFile(l.AgentSocket(w.Host)), ipv6)
	if l.State.Topology.Kubernetes() {
		data, err = kubeNetConf(l.KubeconfigPath(), w.Host, MTUFile(l.AgentSocket(w.Host)), ipv6)
	}
	if err != nil {
		return nil, fmt.Errorf("building the CNI config of %s: %w", w.Name, err)
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("building the CNI config of %s: %w", w.Name, err)
	}
	return list, nil
}

func (l *Lab) createWorkloads(ctx context.Context) error {
	for i := range l.State.Topology.Workloads {
		if err := l.addWorkload(ctx, &l.State.Topology.Workloads[i]); err != nil {
			return err
		}
	}
	return nil
}

// AddWorkload adds w to the running lab, through serval-cni, and records it.
func (l *Lab) AddWorkload(ctx context.Context, w Workload) error {
	// Validate it as part of the topology, so the rules (and messages) are
	// the same as for the file.
	t := *l.State.Topology
	t.Workloads = append(append([]Workload(nil), t.Workloads...), w)
	if l.State.Topology.Router != nil { // validate fills defaults in: keep ours apart
		r := *l.State.Topology.Router
		t.Router = &r
	}
	if errs := t.validate(); len(errs) > 0 {
		return fmt.Errorf("workload %s: %s", w.Name, strings.Join(errs, "; "))
	}
	nw := t.Workloads[len(t.Workloads)-1]
	l.State.Topology.Workloads = append(l.State.Topology.Workloads, nw)
	if err := l.addWorkload(ctx, &l.State.Topology.Workloads[len(l.State.Topology.Workloads)-1]); err != nil {
		l.State.Topology.Workloads = l.State.Topology.Workloads[:len(l.State.Topology.Workloads)-1]
		return err
	}
	return l.saveState()
}

// addWorkload creates w's namespace and runs CNI ADD from w's host
// namespace, as the container runtime on that host would: the plugin
// creates the host end of the veth in the namespace it runs in.
func (l *Lab) addWorkload(ctx context.Context, w *Workload) error {
	if l.State.Topology.Kubernetes() {
		if err := l.createPod(ctx, w); err != nil {
			return err
		}
	}
	ns := l.Netns(w.Name)
	if err := runIP(ctx, "netns", "add", ns); err != nil {
		return err
	}
	if err := runIP(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	list, err := l.netConfList(w)
	if err != nil {
		return err
	}
	rc := l.runtimeConf(w)
	var res types.Result
	err = InNetns(l.Netns(w.Host), func() error {
		var err error
		res, err = l.cni().AddNetworkList(ctx, list, rc)
		return err
	})
	if err != nil {
		_ = runIP(ctx, "netns", "del", ns)
		if l.State.Topology.Kubernetes() {
			_ = l.deletePod(ctx, w)
		}
		return fmt.Errorf("CNI ADD of workload %s on %s: %w", w.Name, w.Host, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("CNI ADD of workload %s: reading the result: %w", w.Name, err)
	}
	ip := ""
	for _, c := range r.IPs {
		if c.Address.IP.To4() != nil {
			ip = c.Address.IP.String()
			break
		}
	}
	if ip == "" {
		return fmt.Errorf("CNI ADD of workload %s: the result has no IPv4 address: %v", w.Name, r.IPs)
	}
	if w.Address != "" && w.Address != ip {
		return fmt.Errorf("CNI ADD of workload %s: asked for %s, got %s", w.Name, w.Address, ip)
	}
	l.State.Workloads[w.Name] = &WorkloadState{ContainerID: rc.ContainerID, IP: ip}
	l.log.Info("workload ready", "workload", w.Name, "host", w.Host, "ip", ip)
	return l.saveState()
}

// DeleteWorkload removes a workload through CNI DEL, then its namespace.
func (l *Lab) DeleteWorkload(ctx context.Context, name string) error {
	idx := -1
	for i, w := range l.State.Topology.Workloads {
		if w.Name == name {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("%q is not a workload of lab %s", name, l.Name)
	}
	w := l.State.Topology.Workloads[idx]
	list, err := l.netConfList(&w)
	if err != nil {
		return err
	}
	err = InNetns(l.Netns(w.Host), func() error {
		return l.cni().DelNetworkList(ctx, list, l.runtimeConf(&w))
	})
	if err != nil {
		return fmt.Errorf("CNI DEL of workload %s on %s: %w", name, w.Host, err)
	}
	if err := runIP(ctx, "netns", "del", l.Netns(name)); err != nil {
		return err
	}
	if l.State.Topology.Kubernetes() {
		if err := l.deletePod(ctx, &w); err != nil {
			return err
		}
	}
	l.State.Topology.Workloads = append(l.State.Topology.Workloads[:idx], l.State.Topology.Workloads[idx+1:]...)
	delete(l.State.Workloads, name)
	l.log.Info("workload deleted", "workload", name)
	return l.saveState()
}
