package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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
	return []string{bin,
		"--nodename", h.Name,
		"--etcd-endpoints", etcd,
		"--ip", h.Address,
		// Hosts share the machine's filesystem: each agent needs a status
		// socket of its own.
		"--status-socket", socket,
	}
}

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
	if _, err := l.startDaemon(l.Netns(host), agentID(host), AgentCommand(l.bin(AgentBinary), *h, l.State.EtcdEndpoint, l.AgentSocket(host))); err != nil {
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
