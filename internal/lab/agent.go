package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/servalnet/serval/internal/netconst"
	"github.com/servalnet/serval/internal/nodestatus"
	"github.com/servalnet/serval/internal/overlay"
)

// AgentBinary is the node agent's file name in the binaries directory.
const AgentBinary = "serval-node"

// AgentHealthPort is where serval-node is expected to serve /readiness
// (Felix's default health port). Adjust here when serval-node settles on
// another.
const AgentHealthPort = 9099

// AgentCommand is serval-node's command line for host h of a lab whose
// datastore is at etcd. It is the one place to change when serval-node's
// flags change.
func AgentCommand(bin string, h Host, etcd, socket string) []string {
	return agentCommand(bin, h, []string{"--etcd-endpoints", etcd}, socket)
}

// agentCommand is serval-node's command line for host h, given the flags
// that name its datastore.
func agentCommand(bin string, h Host, datastoreArgs []string, socket string) []string {
	ip6 := "none"
	if h.Address6 != "" {
		ip6 = h.Address6
	}
	argv := []string{bin,
		"--ip6", ip6,
		"--nodename", h.Name,
	}
	argv = append(argv, datastoreArgs...)
	return append(argv,
		"--ip", h.Address,
		// Hosts share the machine's filesystem: each agent needs a status
		// socket of its own.
		"--status-socket", socket,
		// and an MTU file of its own, which its workloads' CNI reads.
		"--mtu-file", MTUFile(socket),
	)
}

// MTUFile is where the agent whose status socket is socket writes its
// workloads' MTU.
func MTUFile(socket string) string { return strings.TrimSuffix(socket, ".sock") + ".mtu" }

// AgentSocket is where the agent of host answers `servalctl node status`.
func (l *Lab) AgentSocket(host string) string { return filepath.Join(l.Dir, "agents", host+".sock") }

// HasAgent says whether serval-node has been built. Until it has, the lab
// still builds hosts, the datastore, the router and workloads, but nothing
// programs policy or cross-host routes.
func (l *Lab) HasAgent() bool {
	st, err := os.Stat(l.bin(AgentBinary))
	return err == nil && !st.IsDir()
}

func agentID(host string) string { return "agent-" + host }

// AgentPID is the pid of serval-node on host, 0 when it is not running.
func (l *Lab) AgentPID(host string) int { return l.daemonPID(agentID(host)) }

func (l *Lab) startAgents(ctx context.Context) error {
	if !l.HasAgent() {
		l.log.Warn("serval-node is not built yet (" + l.bin(AgentBinary) + " is missing): hosts run no agent, so there is no BGP, no policy and no cross-host routing in this lab")
		return nil
	}
	for _, h := range l.State.Topology.Hosts {
		if err := l.AgentStart(ctx, h.Name); err != nil {
			return err
		}
	}
	return nil
}

// AgentStart starts serval-node on host and waits until it is ready.
func (l *Lab) AgentStart(ctx context.Context, host string) error {
	h := l.State.Topology.Host(host)
	if h == nil {
		return fmt.Errorf("%q is not a host of lab %s", host, l.Name)
	}
	if !l.HasAgent() {
		return fmt.Errorf("cannot start serval-node on %s: %s is not built yet", host, l.bin(AgentBinary))
	}
	if pid := l.AgentPID(host); pid != 0 {
		return fmt.Errorf("serval-node already runs on %s (pid %d)", host, pid)
	}
	l.log.Info("starting serval-node", "host", host)
	if _, err := l.startDaemon(l.Netns(host), agentID(host), agentCommand(l.bin(AgentBinary), *h, l.datastoreArgs(), l.AgentSocket(host))); err != nil {
		return err
	}
	return l.waitFor(ctx, "serval-node on "+host, agentID(host), 60*time.Second, func() error {
		return l.agentReady(host)
	})
}

// agentReady asks serval-node's /readiness from inside the host's
// namespace. It speaks HTTP by hand because net/http dials from another
// goroutine, which would not be in the namespace.
func (l *Lab) agentReady(host string) error {
	var status string
	err := InNetns(l.Netns(host), func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", AgentHealthPort), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /readiness HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		status, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		return fmt.Errorf("readiness of serval-node on %s: %w", host, err)
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		return fmt.Errorf("serval-node on %s is not ready yet: %s", host, strings.TrimSpace(status))
	}
	return nil
}

// AgentStop stops serval-node on host: SIGTERM (graceful) or, with kill,
// SIGKILL, as a crash would.
func (l *Lab) AgentStop(host string, kill bool) error {
	if l.State.Topology.Host(host) == nil {
		return fmt.Errorf("%q is not a host of lab %s", host, l.Name)
	}
	pid := l.AgentPID(host)
	if pid == 0 {
		if !l.HasAgent() {
			return fmt.Errorf("serval-node does not run on %s: it is not built yet (%s)", host, l.bin(AgentBinary))
		}
		return fmt.Errorf("serval-node does not run on %s", host)
	}
	if kill {
		l.log.Info("killing serval-node (SIGKILL)", "host", host, "pid", pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("killing serval-node on %s: %w", host, err)
		}
		for i := 0; i < 100 && alive(pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	l.log.Info("stopping serval-node (SIGTERM)", "host", host, "pid", pid)
	if stopPID(pid, 15*time.Second) {
		return errors.New("serval-node on " + host + " did not stop within 15s of SIGTERM and was killed")
	}
	return nil
}

// sessionsEstablished asks the agent of host, over its status socket (a
// unix socket works across network namespaces), whether all its BGP
// sessions are up.
func (l *Lab) sessionsEstablished(host string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", l.AgentSocket(host))
		}}}
	resp, err := c.Get("http://serval-node/status")
	if err != nil {
		return fmt.Errorf("asking serval-node on %s: %w", host, err)
	}
	defer resp.Body.Close()
	var rep nodestatus.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return fmt.Errorf("reading the status of serval-node on %s: %w", host, err)
	}
	if rep.BGP == nil {
		return nil
	}
	for _, p := range rep.BGP.Peers {
		if p.Info != "Established" {
			return fmt.Errorf("BGP session %s -> %s is %s", host, p.Address, p.Info)
		}
	}
	return nil
}

// waitRoutes returns once every BGP session is up and every host routes to every workload of the other
// hosts through a route its agent learned by BGP, so that what the lab
// shows right after up is the converged network, not the first seconds of
// it. Without serval-node there is nothing to wait for.
func (l *Lab) waitRoutes(ctx context.Context) error {
	if !l.HasAgent() {
		return nil
	}
	return l.waitFor(ctx, "BGP routes to every workload", "", 60*time.Second, func() error {
		var missing []string
		for _, h := range l.State.Topology.Hosts {
			if err := l.sessionsEstablished(h.Name); err != nil {
				return err
			}
			var remote []netip.Addr
			for _, w := range l.State.Topology.Workloads {
				ws := l.State.Workloads[w.Name]
				if w.Host == h.Name || ws == nil {
					continue
				}
				a, err := netip.ParseAddr(ws.IP)
				if err != nil {
					return fmt.Errorf("workload %s: address %q: %w", w.Name, ws.IP, err)
				}
				remote = append(remote, a)
			}
			err := InNetns(l.Netns(h.Name), func() error {
				routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
				if err != nil {
					return err
				}
				for _, a := range remote {
					if r := longestMatch(routes, a); r == nil || r.Protocol != netconst.RouteProtocol && r.Protocol != overlay.RouteProtocol || r.Gw == nil && len(r.MultiPath) == 0 {
						missing = append(missing, h.Name+"→"+a.String())
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("reading the routes of %s: %w", h.Name, err)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("no learned route yet for %s", strings.Join(missing, ", "))
		}
		return nil
	})
}

// longestMatch is the kernel's choice among routes for a, in the main table.
func longestMatch(routes []netlink.Route, a netip.Addr) *netlink.Route {
	var best *netlink.Route
	bestLen := -1
	for i := range routes {
		r := &routes[i]
		if r.Table != 0 && r.Table != unix.RT_TABLE_MAIN {
			continue
		}
		p := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if a.Is6() {
			p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != nil {
			ip, ok := netip.AddrFromSlice(r.Dst.IP)
			if !ok {
				continue
			}
			ones, _ := r.Dst.Mask.Size()
			p = netip.PrefixFrom(ip.Unmap(), ones)
		}
		if p.Addr().Is4() != a.Is4() || !p.Contains(a) || p.Bits() <= bestLen {
			continue
		}
		best, bestLen = r, p.Bits()
	}
	return best
}

// ExecEnv is the environment of a command run in member's namespace
// (serval-lab exec): env, and for a host, SERVAL_STATUS_SOCKET naming its
// agent's socket, so that `servalctl node status` run there asks that
// host's agent. Lab hosts share the machine's filesystem, so each agent's
// socket has its own path, not the default one; a network namespace does
// not tell a unix socket path apart.
func (l *Lab) ExecEnv(member string, env []string) []string {
	if l.State.Topology.Host(member) == nil {
		return env
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, nodestatus.SocketEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, nodestatus.SocketEnv+"="+l.AgentSocket(member))
}
