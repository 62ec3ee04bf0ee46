package routing

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/selector"
)

// Input is everything the calculator reads. Resources are taken as they
// come from the datastore (defaults may or may not have been applied; the
// calculator applies Calico's defaults itself). It is decoupled from IPAM:
// the caller passes the block CIDRs this host has affinity for and the
// addresses it borrowed from other hosts' blocks.
type Input struct {
	// NodeName is this host's Node name.
	NodeName   string
	Nodes      []*api.Node
	BGPConfigs []*api.BGPConfiguration
	Peers      []*api.BGPPeer
	Pools      []*api.IPPool
	// Filters are the BGPFilters BGPPeers name in spec.filters.
	Filters []*api.BGPFilter
	// OwnedBlocks are the block CIDRs with affinity to this host.
	OwnedBlocks []netip.Prefix
	// BorrowedIPs are addresses in use on this host that belong to blocks
	// of other hosts; each is advertised as a /32 (/128).
	BorrowedIPs []netip.Addr
	// LocalIPs are the addresses of every workload on this host, in its
	// own blocks or borrowed: no learned route may take one over.
	LocalIPs []netip.Addr
}

// Compute derives the Desired configuration of in.NodeName. It does no I/O
// apart from asking secrets for passwords; problems with single resources
// (an unparsable address, a bad selector, a missing secret) skip that
// resource and are listed in Desired.Problems. It returns an error only
// when this node itself cannot be configured.
func Compute(in Input, secrets SecretSource) (Desired, error) {
	var d Desired
	problem := func(format string, args ...any) {
		d.Problems = append(d.Problems, fmt.Sprintf(format, args...))
	}

	var defCfg, nodeCfg *api.BGPConfigurationSpec
	for _, c := range in.BGPConfigs {
		if c == nil {
			continue
		}
		switch c.Name {
		case api.BGPDefaultConfigName:
			defCfg = &c.Spec
		case "node." + in.NodeName:
			nodeCfg = &c.Spec
		}
	}
	if defCfg == nil {
		defCfg = &api.BGPConfigurationSpec{}
	}
	clusterAS := uint32(api.DefaultASNumber)
	if defCfg.ASNumber != nil {
		if v, ok := defCfg.ASNumber.Uint32(); ok {
			clusterAS = v
		} else {
			problem("BGPConfiguration default: spec.asNumber %q is invalid; using %d", defCfg.ASNumber.String(), clusterAS)
		}
	}

	nodes := map[string]*nodeInfo{}
	byAddr := map[netip.Addr]*nodeInfo{}
	var names []string
	for _, n := range in.Nodes {
		if n == nil || n.Spec.BGP == nil {
			continue
		}
		ni, err := parseNode(n, clusterAS)
		if err != nil {
			if n.Name == in.NodeName {
				return Desired{}, fmt.Errorf("node %q: %w", n.Name, err)
			}
			problem("Node %q: %v", n.Name, err)
			continue
		}
		nodes[ni.name] = ni
		names = append(names, ni.name)
		for _, a := range []netip.Addr{ni.v4, ni.v6} {
			if a.IsValid() {
				byAddr[a] = ni
			}
		}
	}
	slices.Sort(names)
	me := nodes[in.NodeName]
	if me == nil {
		// Either not registered yet or not a BGP speaker: no BGP here.
		return Desired{NodeName: in.NodeName, Problems: d.Problems}, nil
	}
	if !me.v4.IsValid() && !me.v6.IsValid() {
		return Desired{}, fmt.Errorf("node %q: spec.bgp has neither ipv4Address nor ipv6Address", in.NodeName)
	}

	d.Enabled = true
	d.NodeName = in.NodeName
	for _, n := range in.Nodes {
		if n != nil && n.Name == in.NodeName {
			d.Protected = protectedPrefixes(n, in.LocalIPs)
			d.OwnedBlocks = sortedPrefixes(in.OwnedBlocks)
		}
	}
	d.ASN = me.asn
	d.NodeIPv4, d.NodeIPv6 = me.v4, me.v6
	d.ClusterID = me.clusterID
	d.RouterID = me.v4
	if !d.RouterID.IsValid() {
		d.RouterID = hashRouterID(in.NodeName)
	}

	// Node-specific settings override the cluster-wide ones field by field.
	pick := func(get func(*api.BGPConfigurationSpec) bool) *api.BGPConfigurationSpec {
		if nodeCfg != nil && get(nodeCfg) {
			return nodeCfg
		}
		return defCfg
	}
	listenPort := func(name string) uint16 {
		if c := configOf(in.BGPConfigs, "node."+name); c != nil && c.ListenPort != 0 {
			return c.ListenPort
		}
		if defCfg.ListenPort != 0 {
			return defCfg.ListenPort
		}
		return api.DefaultListenPort
	}
	d.ListenPort = listenPort(in.NodeName)
	if bm := pick(func(s *api.BGPConfigurationSpec) bool { return s.BindMode != nil }).BindMode; bm != nil && *bm == "NodeIP" {
		for _, a := range []netip.Addr{me.v4, me.v6} {
			if a.IsValid() {
				d.ListenAddresses = append(d.ListenAddresses, a)
			}
		}
	}

	// Pools: what may be advertised and what is programmed.
	type pool struct {
		cidr     netip.Prefix
		noExport bool
	}
	var pools []pool
	for _, p := range in.Pools {
		if p == nil {
			continue
		}
		c, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil {
			problem("IPPool %q: spec.cidr %q: %v", p.Name, p.Spec.CIDR, err)
			continue
		}
		c = c.Masked()
		pools = append(pools, pool{c, p.Spec.DisableBGPExport})
		d.ProgramPrefixes = append(d.ProgramPrefixes, c)
	}
	if pcr := pick(func(s *api.BGPConfigurationSpec) bool { return s.ProgramClusterRoutes != nil }).ProgramClusterRoutes; pcr != nil && *pcr == "Disabled" {
		d.ProgramPrefixes = nil
	}
	slices.SortFunc(d.ProgramPrefixes, comparePrefix)
	d.ProgramPrefixes = slices.Compact(d.ProgramPrefixes)
	// exportable reports whether p lies in a pool that allows export. The
	// most specific pool decides, so that a disableBGPExport pool nested
	// in a larger one wins.
	exportable := func(p netip.Prefix) (bool, string) {
		best := -1
		for i, pl := range pools {
			if pl.cidr.Addr().Is4() == p.Addr().Is4() && pl.cidr.Bits() <= p.Bits() && pl.cidr.Contains(p.Addr()) {
				if best < 0 || pl.cidr.Bits() > pools[best].cidr.Bits() {
					best = i
				}
			}
		}
		switch {
		case best < 0:
			return false, "is in no IP pool"
		case pools[best].noExport:
			return false, ""
		}
		return true, ""
	}

	adv := map[netip.Prefix]*Advertisement{}
	add := func(p netip.Prefix, kind string) {
		if _, ok := adv[p]; !ok {
			adv[p] = &Advertisement{Prefix: p, Kind: kind}
		}
	}
	for _, b := range in.OwnedBlocks {
		b = b.Masked()
		if ok, why := exportable(b); ok {
			add(b, AdvBlock)
		} else if why != "" {
			problem("block %s %s; not advertised", b, why)
		}
	}
	for _, a := range in.BorrowedIPs {
		p := netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		if ok, why := exportable(p); ok {
			add(p, AdvBorrowed)
		} else if why != "" {
			problem("borrowed address %s %s; not advertised", a, why)
		}
	}
	for _, svc := range []struct {
		kind   string
		blocks func(*api.BGPConfigurationSpec) []api.ServiceIPBlock
	}{
		{AdvServiceClusterIPs, func(s *api.BGPConfigurationSpec) []api.ServiceIPBlock { return s.ServiceClusterIPs }},
		{AdvServiceExternalIPs, func(s *api.BGPConfigurationSpec) []api.ServiceIPBlock { return s.ServiceExternalIPs }},
		{AdvServiceLoadBalancerIP, func(s *api.BGPConfigurationSpec) []api.ServiceIPBlock { return s.ServiceLoadBalancerIPs }},
	} {
		for _, b := range svc.blocks(pick(func(s *api.BGPConfigurationSpec) bool { return len(svc.blocks(s)) > 0 })) {
			p, err := netip.ParsePrefix(b.CIDR)
			if err != nil {
				problem("BGPConfiguration: %s %q: %v", svc.kind, b.CIDR, err)
				continue
			}
			add(p.Masked(), svc.kind)
		}
	}
	// Communities: prefixAdvertisements tag every advertised prefix inside
	// their CIDR.
	pa := pick(func(s *api.BGPConfigurationSpec) bool { return len(s.PrefixAdvertisements) > 0 })
	named := map[string]string{}
	for _, c := range pick(func(s *api.BGPConfigurationSpec) bool { return len(s.Communities) > 0 }).Communities {
		named[c.Name] = c.Value
	}
	for _, p := range pa.PrefixAdvertisements {
		cidr, err := netip.ParsePrefix(p.CIDR)
		if err != nil {
			problem("BGPConfiguration: prefixAdvertisements cidr %q: %v", p.CIDR, err)
			continue
		}
		cidr = cidr.Masked()
		var values []string
		for _, c := range p.Communities {
			v := c
			if nv, ok := named[c]; ok {
				v = nv
			}
			if _, err := parseCommunity(v); err != nil {
				problem("BGPConfiguration: prefixAdvertisements %s: community %q: %v", p.CIDR, c, err)
				continue
			}
			values = append(values, v)
		}
		for _, a := range adv {
			if a.Prefix.Addr().Is4() == cidr.Addr().Is4() && cidr.Bits() <= a.Prefix.Bits() && cidr.Contains(a.Prefix.Addr()) {
				a.Communities = append(a.Communities, values...)
			}
		}
	}
	for _, a := range adv {
		slices.Sort(a.Communities)
		a.Communities = slices.Compact(a.Communities)
		if len(a.Communities) == 0 {
			a.Communities = nil
		}
		d.Advertise = append(d.Advertise, *a)
	}
	slices.SortFunc(d.Advertise, func(a, b Advertisement) int { return comparePrefix(a.Prefix, b.Prefix) })

	// Peers. Sessions are keyed by address; when two sources name the same
	// address the more specific one wins: node specific over global over
	// mesh, and between BGPPeers of the same rank the smaller name, so the
	// outcome does not depend on the order of the input.
	peers := map[netip.Addr]Peer{}
	rank := map[PeerType]int{PeerMesh: 0, PeerGlobal: 1, PeerNodeSpecific: 2}
	offer := func(p Peer) {
		if p.Address == me.v4 || p.Address == me.v6 {
			return // never peer with ourselves
		}
		old, ok := peers[p.Address]
		if ok && (rank[old.Type] > rank[p.Type] || (rank[old.Type] == rank[p.Type] && old.Origin <= p.Origin)) {
			return
		}
		peers[p.Address] = p
	}
	localAddr := func(peer netip.Addr) netip.Addr {
		if peer.Is4() {
			return me.v4
		}
		return me.v6
	}
	// rrClient applies Calico's rule: a reflector treats every Serval node
	// peer outside its own cluster (no cluster ID, or another one) as a
	// client; reflectors of the same cluster are ordinary iBGP peers.
	rrClient := func(peer *nodeInfo) bool {
		return me.clusterID != "" && peer != nil && peer.clusterID != me.clusterID
	}

	if mesh := defCfg.NodeToNodeMeshEnabled == nil || *defCfg.NodeToNodeMeshEnabled; mesh {
		var pw string
		ok := true
		if defCfg.NodeMeshPassword != nil {
			pw, ok = resolvePassword(defCfg.NodeMeshPassword, secrets, "BGPConfiguration default: nodeMeshPassword", problem)
		}
		restart := DefaultRestartTime
		if defCfg.NodeMeshMaxRestartTime != nil && defCfg.NodeMeshMaxRestartTime.Duration > 0 {
			restart = defCfg.NodeMeshMaxRestartTime.Duration
		}
		for _, name := range names {
			o := nodes[name]
			if name == in.NodeName || !ok {
				continue
			}
			for _, pair := range [][2]netip.Addr{{me.v4, o.v4}, {me.v6, o.v6}} {
				if !pair[0].IsValid() || !pair[1].IsValid() {
					continue
				}
				offer(Peer{
					Address: pair[1], Port: listenPort(name), ASN: o.asn, Type: PeerMesh,
					Origin: "mesh", PeerNode: name, Password: pw, LocalAddress: pair[0],
					RestartTime: restart, NextHopMode: NextHopAuto,
				})
			}
		}
	}

	filters := map[string]*api.BGPFilter{}
	for _, f := range in.Filters {
		if f != nil {
			filters[f.Name] = f
		}
	}
	for _, bp := range in.Peers {
		if bp == nil {
			continue
		}
		s := &bp.Spec
		what := fmt.Sprintf("BGPPeer %q", bp.Name)
		if s.LocalWorkloadSelector != "" {
			problem("%s: localWorkloadSelector is not supported; skipped", what)
			continue
		}
		// A session whose filters cannot be honoured is left out: up
		// without them it would let through what they reject.
		var fv [2]PeerFilters
		var ferr error
		for i, v6 := range []bool{false, true} {
			f, err := resolveFilters(s.Filters, filters, v6)
			if err != nil && ferr == nil {
				ferr = err
			}
			fv[i] = f
		}
		if ferr != nil {
			problem("%s: %v; session skipped", what, ferr)
			continue
		}
		filtersFor := func(a netip.Addr) PeerFilters {
			if a.Is6() {
				return fv[1]
			}
			return fv[0]
		}
		// Which nodes does it apply to?
		typ := PeerGlobal
		appliesTo := func(*nodeInfo) bool { return true }
		switch {
		case s.Node != "":
			typ = PeerNodeSpecific
			appliesTo = func(n *nodeInfo) bool { return n.name == s.Node }
		case s.NodeSelector != "":
			typ = PeerNodeSpecific
			sel, err := selector.Parse(s.NodeSelector)
			if err != nil {
				problem("%s: nodeSelector: %v", what, err)
				continue
			}
			appliesTo = func(n *nodeInfo) bool { return sel.Evaluate(n.labels) }
		}
		var peerSel selector.Selector
		if s.PeerIP == "" && s.PeerSelector != "" {
			sel, err := selector.Parse(s.PeerSelector)
			if err != nil {
				problem("%s: peerSelector: %v", what, err)
				continue
			}
			peerSel = sel
		}
		// Reverse peering (Calico's reversePeering Auto, the default): a
		// node the peerSelector picks peers back with the nodes the
		// BGPPeer applies to, so one resource configures both ends of each
		// session; the route-reflector setup (every node peers with the
		// reflectors) relies on it.
		reverse := peerSel != nil && peerSel.Evaluate(me.labels) &&
			(s.ReversePeering == nil || !strings.EqualFold(*s.ReversePeering, "Manual"))
		forward := appliesTo(me)
		if !forward && !reverse {
			continue
		}
		base := Peer{Type: typ, Origin: "bgppeer/" + bp.Name, NextHopMode: NextHopAuto, RestartTime: DefaultRestartTime}
		if s.LocalASNumber != nil {
			v, ok := s.LocalASNumber.Uint32()
			if !ok {
				problem("%s: localASNumber %q is invalid", what, s.LocalASNumber.String())
				continue
			}
			base.LocalASN = v
		}
		if s.Password != nil {
			pw, ok := resolvePassword(s.Password, secrets, what+": password", problem)
			if !ok {
				continue
			}
			base.Password = pw
		}
		if s.KeepaliveTime != nil && s.KeepaliveTime.Duration > 0 {
			base.KeepaliveTime = s.KeepaliveTime.Duration
		}
		if s.MaxRestartTime != nil && s.MaxRestartTime.Duration > 0 {
			base.RestartTime = s.MaxRestartTime.Duration
		}
		if s.TTLSecurity != nil {
			base.TTLSecurityHops = *s.TTLSecurity
		}
		switch {
		case s.NextHopMode != nil && *s.NextHopMode != "":
			base.NextHopMode = *s.NextHopMode
		case s.KeepOriginalNextHop:
			base.NextHopMode = NextHopKeep
		}
		if n := s.NumAllowedLocalASNumbers; n != nil && *n > 0 {
			base.AllowOwnAS = uint32(*n)
		}
		useNodeIP := s.SourceAddress == "" || s.SourceAddress == "UseNodeIP"

		switch {
		case s.PeerIP != "":
			ip, port, err := api.ParsePeerIP(s.PeerIP)
			if err != nil {
				problem("%s: peerIP %q: %v", what, s.PeerIP, err)
				continue
			}
			addr, _ := netip.AddrFromSlice(ip)
			addr = addr.Unmap()
			p := base
			p.Address = addr
			p.Filters = filtersFor(addr)
			p.Port = uint16(port)
			if p.Port == 0 {
				p.Port = api.DefaultListenPort
			}
			peerNode := byAddr[addr]
			switch {
			case s.ASNumber != nil:
				v, ok := s.ASNumber.Uint32()
				if !ok {
					problem("%s: asNumber %q is invalid", what, s.ASNumber.String())
					continue
				}
				p.ASN = v
			case peerNode != nil:
				p.ASN = peerNode.asn
			default:
				problem("%s: peerIP without asNumber; skipped", what)
				continue
			}
			if peerNode != nil {
				p.PeerNode = peerNode.name
				p.RRClient = rrClient(peerNode)
			}
			if useNodeIP {
				p.LocalAddress = localAddr(addr)
			}
			if s.ReachableBy != "" {
				rb, err := netip.ParseAddr(s.ReachableBy)
				if err != nil || rb.Is4() != addr.Is4() {
					problem("%s: reachableBy %q is not an address of the peer's family", what, s.ReachableBy)
					continue
				}
				p.ReachableBy = rb
			}
			if !p.LocalAddress.IsValid() && useNodeIP {
				problem("%s: this node has no address of the family of %s; skipped", what, addr)
				continue
			}
			offer(p)
		case peerSel != nil:
			for _, name := range names {
				o := nodes[name]
				if name == in.NodeName || !(forward && peerSel.Evaluate(o.labels) || reverse && appliesTo(o)) {
					continue
				}
				for _, pair := range [][2]netip.Addr{{me.v4, o.v4}, {me.v6, o.v6}} {
					if !pair[0].IsValid() || !pair[1].IsValid() {
						continue
					}
					p := base
					p.Address, p.Port, p.ASN, p.PeerNode = pair[1], listenPort(name), o.asn, name
					p.Filters = filtersFor(pair[1])
					p.RRClient = rrClient(o)
					if useNodeIP {
						p.LocalAddress = pair[0]
					}
					offer(p)
				}
			}
		default:
			problem("%s: neither peerIP nor peerSelector; skipped", what)
		}
	}
	for _, p := range peers {
		d.Peers = append(d.Peers, p)
	}
	slices.SortFunc(d.Peers, func(a, b Peer) int { return a.Address.Compare(b.Address) })
	return d, nil
}
