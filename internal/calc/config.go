package calc

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
)

// Calico's defaults for the settings the dataplane acts on.
var (
	defaultFailsafeInbound = []hoststate.ProtoPort{
		{Protocol: api.ProtoTCP, Port: 22}, {Protocol: api.ProtoUDP, Port: 68}, {Protocol: api.ProtoTCP, Port: 179},
		{Protocol: api.ProtoTCP, Port: 2379}, {Protocol: api.ProtoTCP, Port: 2380}, {Protocol: api.ProtoTCP, Port: 5473},
		{Protocol: api.ProtoTCP, Port: 6443}, {Protocol: api.ProtoTCP, Port: 6666}, {Protocol: api.ProtoTCP, Port: 6667},
	}
	defaultFailsafeOutbound = []hoststate.ProtoPort{
		{Protocol: api.ProtoUDP, Port: 53}, {Protocol: api.ProtoUDP, Port: 67}, {Protocol: api.ProtoTCP, Port: 179},
		{Protocol: api.ProtoTCP, Port: 2379}, {Protocol: api.ProtoTCP, Port: 2380}, {Protocol: api.ProtoTCP, Port: 5473},
		{Protocol: api.ProtoTCP, Port: 6443}, {Protocol: api.ProtoTCP, Port: 6666}, {Protocol: api.ProtoTCP, Port: 6667},
	}
)

const (
	defaultInterfacePrefix   = "cali"
	defaultEndpointToHost    = "Drop"
	defaultLogPrefix         = "calico-packet"
	felixConfigDefaultName   = "default"
	felixConfigNodeNamePrefx = "node."
)

// computeConfig merges FelixConfiguration "default" and "node.<hostname>":
// a field the node's object sets wins; what neither sets takes Calico's
// default.
func (g *Graph) computeConfig() hoststate.Config {
	cfg := hoststate.Config{
		InterfacePrefixes:           []string{defaultInterfacePrefix},
		DefaultEndpointToHostAction: defaultEndpointToHost,
		FailsafeInboundHostPorts:    defaultFailsafeInbound,
		FailsafeOutboundHostPorts:   defaultFailsafeOutbound,
		LogPrefix:                   defaultLogPrefix,
		LogRate:                     hoststate.RateLimit{Burst: defaultLogRateBurst},
		InterfaceExclude:            defaultInterfaceExclude,
	}
	for _, fc := range []*api.FelixConfiguration{g.felixDefault, g.felixNode} {
		if fc == nil {
			continue
		}
		s := &fc.Spec
		if s.InterfacePrefix != "" {
			// Calico accepts a comma-separated list ("cali,tap").
			var ps []string
			for _, p := range strings.Split(s.InterfacePrefix, ",") {
				if p = strings.TrimSpace(p); p != "" {
					ps = append(ps, p)
				}
			}
			if len(ps) > 0 {
				cfg.InterfacePrefixes = ps
			}
		}
		if s.DefaultEndpointToHostAction != "" {
			cfg.DefaultEndpointToHostAction = s.DefaultEndpointToHostAction
		}
		if s.LogPrefix != "" {
			cfg.LogPrefix = s.LogPrefix
		}
		if s.FailsafeInboundHostPorts != nil {
			cfg.FailsafeInboundHostPorts = g.protoPorts(fc.Name, *s.FailsafeInboundHostPorts)
		}
		if s.FailsafeOutboundHostPorts != nil {
			cfg.FailsafeOutboundHostPorts = g.protoPorts(fc.Name, *s.FailsafeOutboundHostPorts)
		}
		g.applyDataplaneFields(&cfg, fc)
	}
	return cfg
}

func (g *Graph) protoPorts(from string, in []api.ProtoPort) []hoststate.ProtoPort {
	out := []hoststate.ProtoPort{} // set but empty: no failsafe ports
	for _, pp := range in {
		var proto uint8
		switch strings.ToLower(pp.Protocol) {
		case "tcp", "":
			proto = api.ProtoTCP
		case "udp":
			proto = api.ProtoUDP
		case "sctp":
			proto = api.ProtoSCTP
		default:
			g.log.Warn("ignoring a failsafe port with an unknown protocol", "felixConfiguration", from, "protocol", pp.Protocol)
			continue
		}
		hp := hoststate.ProtoPort{Protocol: proto, Port: pp.Port}
		if pp.Net != "" {
			p, ok := parseAddrOrPrefix(pp.Net)
			if !ok {
				g.log.Warn("ignoring a failsafe port with an invalid net", "felixConfiguration", from, "net", pp.Net)
				continue
			}
			hp.Net = p
		}
		out = append(out, hp)
	}
	return out
}

func (g *Graph) onFelixConfig(name string, obj *api.FelixConfiguration) {
	switch name {
	case felixConfigDefaultName:
		g.felixDefault = obj
	case felixConfigNodeNamePrefx + g.hostname:
		g.felixNode = obj
	default:
		return // another node's
	}
	g.configDirty = true
	// floatingIPs decides what local workloads carry (wepextras.go).
	for k, e := range g.local {
		if e.wep != nil {
			g.dirtyLocal[k] = struct{}{}
		}
	}
}

func (g *Graph) onIPPool(name string, obj *api.IPPool) {
	delete(g.pools, name)
	if obj != nil {
		p, err := netip.ParsePrefix(obj.Spec.CIDR)
		if err != nil {
			g.log.Error("ignoring an IP pool with an invalid CIDR", "pool", name, "cidr", obj.Spec.CIDR)
		} else {
			g.pools[name] = hoststate.IPPool{CIDR: p.Masked(), NATOutgoing: obj.Spec.NATOutgoing, Disabled: obj.Spec.Disabled}
		}
	}
	g.poolsDirty = true
}

// blockAffinityKind is the internal kind IPAM records a host's claim on an
// address block with. The graph reads it generically (spec.node,
// spec.cidr, spec.state) so that it does not depend on the IPAM package's
// Go type.
const blockAffinityKind = "BlockAffinity"

func (g *Graph) onBlockAffinity(key api.Key, obj api.Resource) {
	delete(g.blocks, key)
	g.blocksDirty = true
	if obj == nil {
		return
	}
	var v struct {
		Spec struct {
			Node    string `json:"node"`
			CIDR    string `json:"cidr"`
			State   string `json:"state"`
			Deleted any    `json:"deleted"`
		} `json:"spec"`
	}
	b, err := json.Marshal(obj)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		g.log.Error("ignoring an unreadable block affinity", "resource", key.String(), "err", err)
		return
	}
	s := v.Spec
	if s.Node != g.hostname {
		return
	}
	// Only a confirmed claim makes the block this host's (Calico's states:
	// confirmed, pending, pendingDeletion).
	if st := strings.ToLower(s.State); st != "" && st != "confirmed" {
		return
	}
	if d, ok := s.Deleted.(bool); ok && d {
		return
	}
	if d, ok := s.Deleted.(string); ok && strings.EqualFold(d, "true") {
		return
	}
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		g.log.Error("ignoring a block affinity with an invalid CIDR", "resource", key.String(), "cidr", s.CIDR)
		return
	}
	g.blocks[key] = p.Masked()
}
