package lab

import (
	"context"
	"fmt"
)

// HostLink takes a host's fabric link down or up, as pulling and plugging
// its cable would: it sets the host's port on the fabric bridge (in the
// fabric namespace), so the host's own eth0 keeps its address and routes
// and only sees the carrier go. Everything else on the host (its agent, its
// workloads) is left alone.
func (l *Lab) HostLink(ctx context.Context, host string, up bool) error {
	if l.State.Topology.Host(host) == nil {
		return fmt.Errorf("%q is not a host of lab %s", host, l.Name)
	}
	if l.State.Topology.Wire() {
		return fmt.Errorf("lab %s has no fabric bridge to unplug %s from: its hosts are joined by one veth wire, whose ends go down together", l.Name, host)
	}
	port := ""
	for _, m := range l.members() {
		if m.name == host {
			port = m.port
		}
	}
	state := "down"
	if up {
		state = "up"
	}
	l.log.Info("setting the fabric link of a host "+state, "host", host, "port", port)
	if err := runIP(ctx, "-n", l.Netns("fabric"), "link", "set", port, state); err != nil {
		return fmt.Errorf("setting the fabric link of %s %s: %w", host, state, err)
	}
	return nil
}
