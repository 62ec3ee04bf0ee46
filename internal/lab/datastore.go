package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The lab's datastore is one of:
//
//   - embedded: one etcd member, `servalctl datastore serve`, daemon id
//     "datastore";
//   - etcd-cluster: N members of Debian's etcd (3.4), daemon ids "etcd1" to
//     "etcdN", each on an address of its own in the datastore namespace
//     (Datastore.MemberAddresses), so that one can be stopped or killed while
//     the others keep a quorum.
//
// Every client (servalctl, serval-node, serval-cni) is given all client
// URLs, comma-separated, and fails over by itself.

// EtcdBinary is the etcd server an etcd-cluster lab runs (Debian's
// etcd-server package).
const EtcdBinary = "etcd"

// DatastoreMember is one etcd member of a lab.
type DatastoreMember struct {
	// Name is the member's name and its daemon id: "datastore" for the
	// embedded one, "etcd1".."etcdN" in a cluster.
	Name      string
	Address   netip.Addr
	ClientURL string
	PeerURL   string
}

// clusterAddresses fills d.MemberAddresses (the free addresses just below
// d.Address) or, when the file gives them, checks them. It is part of
// Topology.validate and returns its problems in the same form.
func clusterAddresses(d *Datastore, fabric netip.Prefix, used map[netip.Addr]string, useAddr func(path, s string) netip.Prefix) []string {
	first, err := netip.ParsePrefix(d.Address)
	if err != nil {
		return nil // datastore.address is reported already
	}
	if len(d.MemberAddresses) > 0 {
		var errs []string
		if len(d.MemberAddresses) != d.Members {
			errs = append(errs, fmt.Sprintf("datastore.memberAddresses: %d addresses for %d members", len(d.MemberAddresses), d.Members))
		}
		for i, a := range d.MemberAddresses {
			path := fmt.Sprintf("datastore.memberAddresses[%d]", i)
			if i == 0 {
				if a != d.Address {
					errs = append(errs, fmt.Sprintf("%s: %q must be datastore.address (%s)", path, a, d.Address))
				}
				continue
			}
			useAddr(path, a)
		}
		return errs
	}
	addrs := []string{d.Address}
	for a := first.Addr().Prev(); len(addrs) < d.Members && fabric.Contains(a) && a != fabric.Addr(); a = a.Prev() {
		if _, taken := used[a]; !taken {
			addrs = append(addrs, netip.PrefixFrom(a, fabric.Bits()).String())
			used[a] = "datastore.memberAddresses"
		}
	}
	if len(addrs) < d.Members {
		return []string{fmt.Sprintf("datastore.members: the fabric %s has no room below %s for %d members", fabric, first.Addr(), d.Members)}
	}
	d.MemberAddresses = addrs
	return nil
}

// DatastoreMembers lists the etcd members of topology t.
func DatastoreMembers(t *Topology) []DatastoreMember {
	member := func(name, addr string) DatastoreMember {
		p, _ := netip.ParsePrefix(addr)
		return DatastoreMember{
			Name:      name,
			Address:   p.Addr(),
			ClientURL: fmt.Sprintf("http://%s:2379", p.Addr()),
			PeerURL:   fmt.Sprintf("http://%s:2380", p.Addr()),
		}
	}
	if t.Datastore.Kind != "etcd-cluster" {
		return []DatastoreMember{member("datastore", t.Datastore.Address)}
	}
	ms := make([]DatastoreMember, len(t.Datastore.MemberAddresses))
	for i, a := range t.Datastore.MemberAddresses {
		ms[i] = member(fmt.Sprintf("etcd%d", i+1), a)
	}
	return ms
}

// EtcdEndpoints is what every client of t's datastore is given: all client
// URLs, comma-separated.
func EtcdEndpoints(t *Topology) string {
	var urls []string
	for _, m := range DatastoreMembers(t) {
		urls = append(urls, m.ClientURL)
	}
	return strings.Join(urls, ",")
}

func (l *Lab) datastoreMember(name string) (DatastoreMember, error) {
	var names []string
	for _, m := range DatastoreMembers(l.State.Topology) {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return DatastoreMember{}, fmt.Errorf("%q is not a datastore member of lab %s (members: %s)", name, l.Name, strings.Join(names, ", "))
}

// memberCommand is the command line of datastore member m.
func (l *Lab) memberCommand(m DatastoreMember) []string {
	t := l.State.Topology
	if t.Datastore.Kind != "etcd-cluster" {
		return []string{l.bin("servalctl"), "datastore", "serve",
			"--data-dir", filepath.Join(l.Dir, "etcd"),
			"--listen-client", m.ClientURL,
			"--listen-peer", m.PeerURL,
		}
	}
	var initial []string
	for _, o := range DatastoreMembers(t) {
		initial = append(initial, o.Name+"="+o.PeerURL)
	}
	// On a restart the data directory exists and etcd ignores the
	// initial-cluster flags, so one command line serves both.
	return []string{l.etcdBinary(),
		"--name", m.Name,
		"--data-dir", filepath.Join(l.Dir, "etcd", m.Name),
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "svl-" + l.Name,
		"--logger", "zap",
	}
}

func (l *Lab) etcdBinary() string {
	if p, err := exec.LookPath(EtcdBinary); err == nil {
		return p
	}
	return EtcdBinary
}

// startDatastore starts every member and returns once servalctl can read
// through the client URLs. A cluster's extra addresses are added to the
// datastore namespace's eth0 first.
func (l *Lab) startDatastore(ctx context.Context) error {
	t := l.State.Topology
	ns := l.Netns("datastore")
	for _, a := range t.Datastore.MemberAddresses {
		if a == t.Datastore.Address {
			continue
		}
		if err := runIP(ctx, "-n", ns, "addr", "add", a, "dev", "eth0"); err != nil {
			return err
		}
	}
	members := DatastoreMembers(t)
	for _, m := range members {
		if _, err := l.startDaemon(ns, m.Name, l.memberCommand(m)); err != nil {
			return err
		}
	}
	// A cluster answers once a quorum has elected a leader: wait on each
	// member's own health first, so a member that fails to start is named.
	if len(members) > 1 {
		for _, m := range members {
			if err := l.waitFor(ctx, "etcd member "+m.Name+" at "+m.ClientURL, m.Name, 30*time.Second, func() error {
				return l.memberHealth(ctx, m)
			}); err != nil {
				return err
			}
		}
	}
	if t.Kubernetes() {
		if err := l.waitFor(ctx, "etcd at "+l.State.EtcdEndpoint, members[0].Name, 30*time.Second, func() error {
			return l.memberHealth(ctx, members[0])
		}); err != nil {
			return err
		}
		if err := l.startKubeAPIServer(ctx); err != nil {
			return err
		}
	}
	return l.waitFor(ctx, "datastore at "+l.datastoreWhere(), members[0].Name, 30*time.Second, func() error {
		_, err := l.Servalctl(ctx, nil, "--timeout", "2s", "get", "ippools")
		return err
	})
}

// datastoreWhere is where clients reach the datastore.
func (l *Lab) datastoreWhere() string {
	if l.State.Topology.Kubernetes() {
		return l.kubeURL()
	}
	return l.State.EtcdEndpoint
}

// DatastoreStop stops one datastore member: SIGTERM, or SIGKILL with kill,
// as a crash would. Stopping a minority of an etcd-cluster leaves the lab
// working.
func (l *Lab) DatastoreStop(member string, kill bool) error {
	m, err := l.datastoreMember(member)
	if err != nil {
		return err
	}
	pid := l.daemonPID(m.Name)
	if pid == 0 {
		return fmt.Errorf("datastore member %s does not run", m.Name)
	}
	if kill {
		l.log.Info("killing datastore member (SIGKILL)", "member", m.Name, "pid", pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("killing datastore member %s: %w", m.Name, err)
		}
		for i := 0; i < 100 && alive(pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	l.log.Info("stopping datastore member (SIGTERM)", "member", m.Name, "pid", pid)
	if stopPID(pid, 10*time.Second) {
		return fmt.Errorf("datastore member %s did not stop within 10s of SIGTERM and was killed", m.Name)
	}
	return nil
}

// DatastoreStart starts a stopped datastore member again, on its data
// directory, and waits until it reports healthy.
func (l *Lab) DatastoreStart(ctx context.Context, member string) error {
	m, err := l.datastoreMember(member)
	if err != nil {
		return err
	}
	if pid := l.daemonPID(m.Name); pid != 0 {
		return fmt.Errorf("datastore member %s already runs (pid %d)", m.Name, pid)
	}
	l.log.Info("starting datastore member", "member", m.Name)
	if _, err := l.startDaemon(l.Netns("datastore"), m.Name, l.memberCommand(m)); err != nil {
		return err
	}
	return l.waitFor(ctx, "etcd member "+m.Name, m.Name, 30*time.Second, func() error {
		return l.memberHealth(ctx, m)
	})
}

// nsHTTPClient is an HTTP client whose connections are made inside
// namespace ns: a socket stays in the namespace it was created in, so only
// the dial has to happen on a thread that entered it.
func nsHTTPClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := InNetns(ns, func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// memberHealth asks member m's /health, which etcd answers true only when
// the member is part of a cluster that has a leader.
func (l *Lab) memberHealth(ctx context.Context, m DatastoreMember) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := nsHTTPClient(l.Netns("datastore"), 2*time.Second).Do(req)
	if err != nil {
		return fmt.Errorf("health of etcd member %s: %w", m.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("health of etcd member %s: %s: %w", m.Name, strings.TrimSpace(string(body)), err)
	}
	if h.Health != "true" {
		return fmt.Errorf("etcd member %s is not healthy: %s", m.Name, strings.TrimSpace(string(body)))
	}
	return nil
}

// memberStatus asks member m for its raft status through etcd's JSON
// gateway (POST /v3/maintenance/status): whether it leads.
func (l *Lab) memberStatus(ctx context.Context, m DatastoreMember) (leader bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.ClientURL+"/v3/maintenance/status", strings.NewReader("{}"))
	if err != nil {
		return false, err
	}
	resp, err := nsHTTPClient(l.Netns("datastore"), 2*time.Second).Do(req)
	if err != nil {
		return false, fmt.Errorf("status of etcd member %s: %w", m.Name, err)
	}
	defer resp.Body.Close()
	var st struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&st); err != nil {
		return false, fmt.Errorf("status of etcd member %s: %w", m.Name, err)
	}
	if st.Header.MemberID == "" {
		return false, errors.New("status of etcd member " + m.Name + ": no member id in the answer")
	}
	return st.Leader == st.Header.MemberID, nil
}

// memberState is one line of `status` for a member: process, health, role.
func (l *Lab) memberState(ctx context.Context, m DatastoreMember) string {
	if l.daemonPID(m.Name) == 0 {
		return "STOPPED"
	}
	if err := l.memberHealth(ctx, m); err != nil {
		return "UNHEALTHY: " + err.Error()
	}
	if l.State.Topology.Datastore.Kind != "etcd-cluster" {
		return "healthy"
	}
	leader, err := l.memberStatus(ctx, m)
	switch {
	case err != nil:
		return "healthy (role unknown: " + err.Error() + ")"
	case leader:
		return "healthy, leader"
	}
	return "healthy, follower"
}

// datastoreRows writes one row per datastore member into status's
// INFRASTRUCTURE table: address, role, namespace, process and health.
func (l *Lab) datastoreRows(ctx context.Context, w io.Writer) {
	t := l.State.Topology
	members := DatastoreMembers(t)
	for i, m := range members {
		what := "etcd (embedded), clients at " + m.ClientURL
		addr := t.Datastore.Address
		if t.Datastore.Kind == "etcd-cluster" {
			what = fmt.Sprintf("etcd member %d of %d, client URL %s", i+1, len(members), m.ClientURL)
			addr = t.Datastore.MemberAddresses[i]
		}
		state := l.processState(m.Name)
		if l.daemonPID(m.Name) != 0 {
			state += ", " + l.memberState(ctx, m)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Name, addr, what, nsState(l.Netns("datastore")), state)
	}
	if t.Kubernetes() {
		state := l.processState(KubeAPIServerID)
		if l.daemonPID(KubeAPIServerID) != 0 {
			if err := l.kubeReady(ctx); err != nil {
				state += ", NOT READY: " + err.Error()
			} else {
				state += ", ready"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", KubeAPIServerID, t.Datastore.Address, "kube-apiserver at "+l.kubeURL()+", kubeconfig "+l.KubeconfigPath(), nsState(l.Netns("datastore")), state)
	}
}
