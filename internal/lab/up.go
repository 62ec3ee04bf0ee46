package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/kubeapi"
)

// DefaultPool is the IPPool a lab creates when no manifest defines one:
// Calico's default.
const DefaultPool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: Never
  natOutgoing: true
`

// Up builds the lab t describes and returns when every host is ready:
// the fabric, the datastore, the router, serval-node on every host (when
// it has been built) and every workload, wired by the real CNI plugin.
// On error, what was built stays for Down to remove (the caller decides,
// so that a failed lab can be inspected).
func Up(ctx context.Context, t *Topology, opts Options) (*Lab, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("serval-lab up needs root (it creates network namespaces)")
	}
	l := &Lab{Name: t.Name, Dir: labDir(opts, t.Name), opts: opts, log: opts.Logger.With("lab", t.Name)}
	l.State = State{Topology: t, BinDir: opts.BinDir, Workloads: map[string]*WorkloadState{}}
	if err := l.preflight(); err != nil {
		return nil, err
	}
	if nss, _ := listNetns(NetnsPrefix(t.Name)); len(nss) > 0 || dirExists(l.Dir) {
		return nil, fmt.Errorf("lab %q already exists (%s); remove it first with 'serval-lab down --name %s'", t.Name, l.Dir, t.Name)
	}
	for _, d := range []string{"pids", "logs", "etcd", "cni-cache"} {
		if err := os.MkdirAll(l.Dir+"/"+d, 0o755); err != nil {
			return nil, fmt.Errorf("creating run directory: %w", err)
		}
	}
	l.State.EtcdEndpoint = EtcdEndpoints(t)
	// Written first, so that even a lab that dies half-built can be
	// inspected; Down does not need it.
	if err := l.saveState(); err != nil {
		return nil, err
	}

	type step struct {
		what string
		fn   func(context.Context) error
	}
	steps := []step{
		{"creating the fabric and the hosts", l.createFabric},
		{"starting the datastore (" + datastoreWhat(t) + ")", l.startDatastore},
		{"applying the IP pool, nodes and manifests", l.applyResources},
		{"starting the router", l.startRouter},
		{"starting serval-node on every host", l.startAgents},
	}
	if t.IsCluster() {
		steps = append(steps,
			step{"starting kube-controller-manager and kube-scheduler", l.startControlPlane},
			step{"starting containerd, kubelet and kube-proxy on every host", l.startNodes})
	}
	steps = append(steps,
		step{"creating workloads through serval-cni", l.createWorkloads},
		step{"waiting for BGP routes to every workload", l.waitRoutes})
	for _, s := range steps {
		start := time.Now()
		l.log.Info(s.what)
		if err := s.fn(ctx); err != nil {
			return l, fmt.Errorf("bringing up lab %q: %s: %w", t.Name, s.what, err)
		}
		l.log.Debug("done", "step", s.what, "took", time.Since(start).Round(time.Millisecond))
	}
	l.State.Complete = true
	if err := l.saveState(); err != nil {
		return l, err
	}
	return l, nil
}

func datastoreWhat(t *Topology) string {
	if t.Kubernetes() {
		return "kube-apiserver on embedded etcd"
	}
	return t.Datastore.Kind + " etcd"
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// preflight checks every binary up will need, so a missing one is one
// clear message before anything is built.
func (l *Lab) preflight() error {
	t := l.State.Topology
	var missing []string
	need := func(path, why string) {
		if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s (%s)", path, why))
		}
	}
	need(l.bin("servalctl"), "the datastore and manifests; run 'make build'")
	if len(t.Workloads) > 0 {
		need(l.bin("serval"), "the CNI plugin that wires workloads; run 'make build'")
		need(l.bin("serval-ipam"), "the IPAM plugin; run 'make build'")
	}
	if t.Router != nil && t.Router.Kind == "bird" {
		if _, err := exec.LookPath("bird"); err != nil {
			missing = append(missing, "bird (the router; install the Debian package bird2, or run scripts/install-deps.sh)")
		}
	}
	if t.Router != nil && t.Router.Kind == "frr" {
		need("/usr/lib/frr/zebra", "the FRR router; install the Debian package frr, or run scripts/install-deps.sh")
		need("/usr/lib/frr/bgpd", "the FRR router; install the Debian package frr")
		if _, err := exec.LookPath("vtysh"); err != nil {
			missing = append(missing, "vtysh (the FRR router's CLI; install the Debian package frr)")
		}
	}
	if t.Kubernetes() {
		for _, b := range []string{"kube-apiserver", "kubectl"} {
			if _, err := kubeapi.Binary("", b); err != nil {
				missing = append(missing, err.Error())
			}
		}
	}
	if t.IsCluster() {
		need(l.bin("serval"), "the CNI plugin containerd calls; run 'make build'")
		need(l.bin("serval-ipam"), "the IPAM plugin; run 'make build'")
		need(l.bin("serval-pause"), "the pod sandbox image's program; run 'make build'")
		missing = append(missing, preflightCluster()...)
	}
	if t.Datastore.Kind == "etcd-cluster" {
		if _, err := exec.LookPath(EtcdBinary); err != nil {
			missing = append(missing, "etcd (the etcd-cluster datastore; install the Debian package etcd-server, or run scripts/install-deps.sh)")
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "ip (install the Debian package iproute2)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("cannot build lab %q, missing:\n  %s", t.Name, strings.Join(missing, "\n  "))
	}
	return nil
}

// member is something attached to the fabric bridge.
type member struct {
	name, port, address string
}

func (l *Lab) members() []member {
	t := l.State.Topology
	var ms []member
	for i, h := range t.Hosts {
		ms = append(ms, member{h.Name, fmt.Sprintf("h%d", i), h.Address})
	}
	if t.Router != nil {
		ms = append(ms, member{t.Router.Name, "rtr", t.Router.Address})
	}
	ms = append(ms, member{"datastore", "ds", t.Datastore.Address})
	return ms
}

// createFabric builds the shared segment: a bridge inside the lab's own
// "fabric" namespace (never in the real host's namespace), and for each
// member a namespace whose eth0 is a veth to that bridge. Every veth is
// created inside lab namespaces, so deleting them removes it.
func (l *Lab) createFabric(ctx context.Context) error {
	if l.State.Topology.Wire() {
		return l.createWire(ctx)
	}
	fab := l.Netns("fabric")
	cmds := [][]string{
		{"netns", "add", fab},
		{"-n", fab, "link", "set", "lo", "up"},
		{"-n", fab, "link", "add", "br0", "type", "bridge"},
		{"-n", fab, "link", "set", "br0", "up"},
	}
	for _, m := range l.members() {
		ns := l.Netns(m.name)
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", fab, "link", "add", m.port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", fab, "link", "set", m.port, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", m.address, "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
		if mtu := l.State.Topology.MTU; mtu != 0 {
			cmds = append(cmds,
				[]string{"-n", fab, "link", "set", m.port, "mtu", strconv.Itoa(mtu)},
				[]string{"-n", ns, "link", "set", "eth0", "mtu", strconv.Itoa(mtu)})
		}
	}
	for _, h := range l.State.Topology.Hosts {
		if h.Address6 != "" {
			cmds = append(cmds, []string{"-n", l.Netns(h.Name), "addr", "add", h.Address6, "dev", "eth0", "nodad"})
		}
	}
	if r := l.State.Topology.Router; r != nil {
		for _, a := range append([]string{r.Address6}, r.Subnets6...) {
			if a != "" {
				cmds = append(cmds, []string{"-n", l.Netns(r.Name), "addr", "add", a, "dev", "eth0", "nodad"})
			}
		}
		// The router's further subnets share its eth0 (a router on a
		// stick); the datastore, on the first subnet, reaches them via it.
		ra, _ := netip.ParsePrefix(r.Address)
		for _, a := range r.Subnets {
			p, _ := netip.ParsePrefix(a)
			cmds = append(cmds,
				[]string{"-n", l.Netns(r.Name), "addr", "add", a, "dev", "eth0"},
				[]string{"-n", l.Netns("datastore"), "route", "add", p.Masked().String(), "via", ra.Addr().String()})
		}
	}
	for _, c := range cmds {
		if err := runIP(ctx, c...); err != nil {
			return err
		}
	}
	if err := l.createExternal(ctx); err != nil {
		return err
	}
	// Every host needs a route for 169.254.1.1, the workloads' gateway:
	// proxy ARP answers only for addresses the host can route elsewhere,
	// which is why Calico hosts rely on their default route. Here it
	// points at the router, or, without one, out of the fabric port.
	t := l.State.Topology
	for _, h := range t.Hosts {
		route := []string{"-n", l.Netns(h.Name), "route", "add", "default", "dev", "eth0"}
		if t.Router != nil {
			if !t.Router.HostsDefaultViaRouter() {
				// The router advertises one by BGP; meanwhile the
				// gateway address alone must be routable.
				route = []string{"-n", l.Netns(h.Name), "route", "add", "169.254.1.1/32", "dev", "eth0", "scope", "link"}
			} else {
				route = []string{"-n", l.Netns(h.Name), "route", "add", "default", "via", t.HostGateway(h).String()}
			}
		}
		if err := runIP(ctx, route...); err != nil {
			return err
		}
		if gw := t.HostGateway6(h); gw.IsValid() {
			if err := runIP(ctx, "-n", l.Netns(h.Name), "-6", "route", "add", "default", "via", gw.String()); err != nil {
				return err
			}
		}
	}
	// Hosts and the router forward: every host is a router.
	for _, m := range l.members() {
		if m.name == "datastore" {
			continue
		}
		if err := writeSysctl(l.Netns(m.name), "net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		if t.DualStack() {
			if err := writeSysctl(l.Netns(m.name), "net.ipv6.conf.all.forwarding", "1"); err != nil {
				return err
			}
		}
	}
	if r := t.Router; r != nil && len(r.Subnets) > 0 {
		// Subnets share one segment: the router must not redirect hosts
		// to each other, or traffic between subnets would skip it.
		for _, k := range []string{"net.ipv4.conf.all.send_redirects", "net.ipv4.conf.eth0.send_redirects"} {
			if err := writeSysctl(l.Netns(r.Name), k, "0"); err != nil {
				return err
			}
		}
	}
	return nil
}

// createWire joins the two hosts of a wire lab by one veth pair, eth0 at
// each end, as two servers cabled back to back: no bridge and no namespace
// between them, the topology of the dataplane benchmark's references
// (bench/internal/runner/reference.go), down to each host's default
// route via the other. The datastore is not on the wire: each host has a
// management link (mgmt0, whose other end is m<i> in the datastore
// namespace) with a /32 route to every datastore address, so the wire
// carries only what the hosts send each other (BGP and workload traffic).
// The datastore's addresses sit on an eth0 that leads nowhere (a veth
// whose peer, eth0-stub, stays in the same namespace: the kernel may have no
// dummy links), so startDatastore adds a cluster's extra addresses there as
// on a bridge lab.
func (l *Lab) createWire(ctx context.Context) error {
	t := l.State.Topology
	ds := l.Netns("datastore")
	h0, h1 := t.Hosts[0], t.Hosts[1]
	ns0, ns1 := l.Netns(h0.Name), l.Netns(h1.Name)
	a0, _ := netip.ParsePrefix(h0.Address)
	a1, _ := netip.ParsePrefix(h1.Address)
	cmds := [][]string{
		{"netns", "add", ds},
		{"-n", ds, "link", "set", "lo", "up"},
		{"-n", ds, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-stub"},
		{"-n", ds, "addr", "add", t.Datastore.Address, "dev", "eth0"},
		{"-n", ds, "link", "set", "eth0-stub", "up"},
		{"-n", ds, "link", "set", "eth0", "up"},
		{"netns", "add", ns0},
		{"netns", "add", ns1},
		{"-n", ns0, "link", "set", "lo", "up"},
		{"-n", ns1, "link", "set", "lo", "up"},
		{"-n", ns0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", ns1},
		{"-n", ns0, "addr", "add", h0.Address, "dev", "eth0"},
		{"-n", ns1, "addr", "add", h1.Address, "dev", "eth0"},
		{"-n", ns0, "link", "set", "eth0", "up"},
		{"-n", ns1, "link", "set", "eth0", "up"},
		// The default route makes 169.254.1.1 routable, which proxy ARP
		// for the workloads' gateway needs; as in the reference, it
		// points at the other end of the wire.
		{"-n", ns0, "route", "add", "default", "via", a1.Addr().String()},
		{"-n", ns1, "route", "add", "default", "via", a0.Addr().String()},
	}
	dsAddrs := t.Datastore.MemberAddresses
	if len(dsAddrs) == 0 {
		dsAddrs = []string{t.Datastore.Address}
	}
	for i, h := range t.Hosts {
		ns, port := l.Netns(h.Name), fmt.Sprintf("m%d", i)
		ha, _ := netip.ParsePrefix(h.Address)
		cmds = append(cmds,
			[]string{"-n", ds, "link", "add", port, "type", "veth", "peer", "name", "mgmt0", "netns", ns},
			[]string{"-n", ds, "link", "set", port, "up"},
			[]string{"-n", ns, "link", "set", "mgmt0", "up"},
			[]string{"-n", ds, "route", "add", ha.Addr().String() + "/32", "dev", port},
		)
		for _, a := range dsAddrs {
			da, _ := netip.ParsePrefix(a)
			// src: the host speaks to the datastore from its own address,
			// which the datastore routes back over this link.
			cmds = append(cmds, []string{"-n", ns, "route", "add", da.Addr().String() + "/32", "dev", "mgmt0", "src", ha.Addr().String()})
		}
	}
	for _, c := range cmds {
		if err := runIP(ctx, c...); err != nil {
			return err
		}
	}
	for _, h := range t.Hosts {
		if err := writeSysctl(l.Netns(h.Name), "net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
	}
	return nil
}

// createExternal builds the external hosts' segment: a second bridge (brx)
// in the fabric namespace, the router's ext0 and each external host's eth0
// on it, and the external hosts' default route via the router.
func (l *Lab) createExternal(ctx context.Context) error {
	t := l.State.Topology
	if len(t.ExternalHosts) == 0 {
		return nil
	}
	fab, rtr := l.Netns("fabric"), l.Netns(t.Router.Name)
	ra, _ := netip.ParsePrefix(t.Router.ExternalAddress)
	cmds := [][]string{
		{"-n", fab, "link", "add", "brx", "type", "bridge"},
		{"-n", fab, "link", "set", "brx", "up"},
		{"-n", fab, "link", "add", "xrtr", "type", "veth", "peer", "name", "ext0", "netns", rtr},
		{"-n", fab, "link", "set", "xrtr", "master", "brx", "up"},
		{"-n", rtr, "addr", "add", t.Router.ExternalAddress, "dev", "ext0"},
		{"-n", rtr, "link", "set", "ext0", "up"},
	}
	for i, e := range t.ExternalHosts {
		ns, port := l.Netns(e.Name), fmt.Sprintf("x%d", i)
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", fab, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", fab, "link", "set", port, "master", "brx", "up"},
			[]string{"-n", ns, "addr", "add", e.Address, "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "route", "add", "default", "via", ra.Addr().String()},
		)
	}
	for _, c := range cmds {
		if err := runIP(ctx, c...); err != nil {
			return err
		}
	}
	return nil
}

// applyResources writes, in order: the default IP pool (when no manifest
// has one), a Node per host (address and AS, as `calicoctl node run` would
// register it), a global BGPPeer for the router, then the manifests. They go
// in before any workload, because IPAM needs the pool; policy written before
// its endpoints exist is fine.
func (l *Lab) applyResources(ctx context.Context) error {
	t := l.State.Topology
	hasPool := false
	for _, m := range t.Manifests {
		data, err := os.ReadFile(m)
		if err != nil {
			return fmt.Errorf("reading manifest: %w", err)
		}
		docs, err := api.Decode(m, data)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", m, err)
		}
		for _, d := range docs {
			if d.Resource.GetTypeMeta().Kind == "IPPool" {
				hasPool = true
			}
		}
	}
	var b strings.Builder
	if !hasPool {
		b.WriteString(DefaultPool)
	}
	if t.Kubernetes() {
		// The Serval Nodes are derived from Kubernetes Nodes.
		if err := l.createKubeNodes(ctx); err != nil {
			return err
		}
		b.WriteString(peerYAML(t))
	} else {
		b.WriteString(nodesYAML(t))
	}
	if _, err := l.Servalctl(ctx, []byte(b.String()), "apply", "-f", "-"); err != nil {
		return err
	}
	for _, m := range t.Manifests {
		l.log.Info("applying manifest", "file", m)
		if _, err := l.Servalctl(ctx, nil, "apply", "-f", m); err != nil {
			return err
		}
	}
	return nil
}

// nodesYAML is the Node of every host and, with a router, the BGPPeer that
// makes every host peer with it.
func nodesYAML(t *Topology) string {
	var b strings.Builder
	for _, h := range t.Hosts {
		fmt.Fprintf(&b, "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: %s\nspec:\n  bgp:\n    ipv4Address: %s\n", h.Name, h.Address)
		if h.Address6 != "" {
			fmt.Fprintf(&b, "    ipv6Address: %s\n", h.Address6)
		}
		if h.ASNumber != 0 {
			fmt.Fprintf(&b, "    asNumber: %d\n", h.ASNumber)
		}
	}
	b.WriteString(peerYAML(t))
	return b.String()
}

// peerYAML is, with a router, the BGPPeer that makes every host peer with
// it.
func peerYAML(t *Topology) string {
	var b strings.Builder
	if r := t.Router; r != nil && r.Kind != RouterStatic {
		ra, _ := netip.ParsePrefix(r.Address)
		fmt.Fprintf(&b, "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: lab-tor\nspec:\n  peerIP: %s\n  asNumber: %d\n", ra.Addr(), r.ASNumber)
	}
	return b.String()
}
