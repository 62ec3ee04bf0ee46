package routing

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/selector"
)

// PeerType says where a session comes from, in the words calicoctl node
// status uses.
type PeerType string

const (
	PeerMesh         PeerType = "node-to-node mesh"
	PeerGlobal       PeerType = "global"
	PeerNodeSpecific PeerType = "node specific"
)

// Next-hop modes of a BGPPeer (Calico's nextHopMode).
const (
	NextHopAuto = "Auto"
	NextHopSelf = "Self"
	NextHopKeep = "Keep"
)

// DefaultRestartTime is the graceful-restart time of a session whose
// BGPPeer (or the mesh) names none; it is BIRD's default, which Calico uses.
const DefaultRestartTime = 120 * time.Second

// Advertisement kinds: why a prefix is advertised.
const (
	AdvBlock                 = "block"
	AdvBorrowed              = "borrowed"
	AdvServiceClusterIPs     = "serviceClusterIPs"
	AdvServiceExternalIPs    = "serviceExternalIPs"
	AdvServiceLoadBalancerIP = "serviceLoadBalancerIPs"
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

// Desired is the BGP configuration of one host: what its speaker should
// look like. The zero value (Enabled false) means "no BGP on this host".
// Slices are sorted so that two Desired values for the same input are
// equal (reflect.DeepEqual), which lets the Speaker diff cheaply.
type Desired struct {
	// Enabled is false when the node has no spec.bgp: it is then not a
	// BGP speaker and the Speaker stops its server.
	Enabled  bool
	NodeName string
	ASN      uint32
	// RouterID is the node's IPv4 address, or for an IPv6-only node an
	// address derived from a hash of its name (BGP router IDs are 32-bit).
	RouterID   netip.Addr
	ListenPort uint16
	// ListenAddresses is empty to listen on every address (bindMode None),
	// or the node's own addresses (bindMode NodeIP).
	ListenAddresses []netip.Addr
	// NodeIPv4 and NodeIPv6 are the node's BGP addresses (invalid when absent).
	NodeIPv4, NodeIPv6 netip.Addr
	// ClusterID is the route-reflector cluster ID when this node is a
	// reflector, "" otherwise.
	ClusterID string
	Peers     []Peer
	Advertise []Advertisement
	// ProgramPrefixes are the IP pools: learned routes inside them are
	// programmed into the kernel. Empty when programClusterRoutes is
	// Disabled.
	ProgramPrefixes []netip.Prefix
	// Protected are the prefixes no learned route may take over (see
	// protectedPrefixes): learned routes equal to or inside them are not
	// programmed.
	Protected []netip.Prefix
	// OwnedBlocks are this host's blocks: inside one, a learned route is
	// programmed only when it is a host route (another host's workload
	// that borrowed an address from the block), never the block itself
	// or a part of it.
	OwnedBlocks []netip.Prefix
	// Problems are the inputs that were skipped, each saying why. They do
	// not stop the rest of the configuration.
	Problems []string
}

// Peer is one BGP session. Sessions are keyed by Address: BGP allows one
// session per neighbor address.
type Peer struct {
	Address netip.Addr
	// Port is the peer's BGP port (179 unless peerIP or its node's
	// listenPort says otherwise).
	Port uint16
	ASN  uint32
	// LocalASN is the AS this host presents on the session; 0 means
	// Desired.ASN.
	LocalASN uint32
	Type     PeerType
	// Origin names what created the session: "mesh" or "bgppeer/<name>".
	Origin string
	// PeerNode is the Serval node behind the address, "" for an external
	// router.
	PeerNode string
	Password string
	// LocalAddress is the source address of the session (invalid: let the
	// kernel choose, sourceAddress None).
	LocalAddress  netip.Addr
	KeepaliveTime time.Duration
	// RestartTime is the graceful-restart time; graceful restart is on for
	// every session.
	RestartTime time.Duration
	// TTLSecurityHops enables GTSM when non-zero.
	TTLSecurityHops uint8
	NextHopMode     string
	// RRClient: this host reflects routes to the peer.
	RRClient bool
	// ReachableBy is a gateway through which a host route to the peer is
	// programmed (invalid: none).
	ReachableBy netip.Addr
	// AllowOwnAS is numAllowedLocalASNumbers.
	AllowOwnAS uint32
	// Filters are the BGPPeer's BGPFilters, resolved for the session's
	// family. They change without resetting the session.
	Filters PeerFilters
}

// Advertisement is one prefix this host originates.
type Advertisement struct {
	Prefix netip.Prefix
	// Kind is one of the Adv* constants.
	Kind string
	// Communities are canonical values ("65000:100" standard,
	// "65000:1:2" large), sorted.
	Communities []string
}

// SecretSource resolves a BGPPeer's (or the mesh's) password reference.
// Calico reads Kubernetes secrets; Serval, which has no Kubernetes, reads
// them from a source the daemon chooses (a directory of files, the
// environment). Implementations must be safe for concurrent use.
type SecretSource interface {
	Secret(name, key string) (string, error)
}

// ErrSecretNotFound is returned (wrapped) by a SecretSource that has no
// such secret.
var ErrSecretNotFound = errors.New("secret not found")

type nodeInfo struct {
	name      string
	labels    map[string]string
	asn       uint32
	v4, v6    netip.Addr
	clusterID string
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

func configOf(cfgs []*api.BGPConfiguration, name string) *api.BGPConfigurationSpec {
	for _, c := range cfgs {
		if c != nil && c.Name == name {
			return &c.Spec
		}
	}
	return nil
}

func parseNode(n *api.Node, clusterAS uint32) (*nodeInfo, error) {
	b := n.Spec.BGP
	ni := &nodeInfo{name: n.Name, labels: n.Labels, asn: clusterAS, clusterID: b.RouteReflectorClusterID}
	if b.ASNumber != nil {
		v, ok := b.ASNumber.Uint32()
		if !ok {
			return nil, fmt.Errorf("spec.bgp.asNumber %q is invalid", b.ASNumber.String())
		}
		ni.asn = v
	}
	for _, f := range []struct {
		field, text string
		dst         *netip.Addr
		v4          bool
	}{{"ipv4Address", b.IPv4Address, &ni.v4, true}, {"ipv6Address", b.IPv6Address, &ni.v6, false}} {
		if f.text == "" {
			continue
		}
		a, err := parseHostAddr(f.text)
		if err != nil || a.Is4() != f.v4 {
			return nil, fmt.Errorf("spec.bgp.%s %q is not an IPv%s address", f.field, f.text, map[bool]string{true: "4", false: "6"}[f.v4])
		}
		*f.dst = a
	}
	if ni.clusterID != "" {
		if a, err := netip.ParseAddr(ni.clusterID); err != nil || !a.Is4() {
			return nil, fmt.Errorf("spec.bgp.routeReflectorClusterID %q is not an IPv4 address", ni.clusterID)
		}
	}
	return ni, nil
}

// parseHostAddr accepts "10.0.0.5/24" (the Node form) or a bare address.
func parseHostAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, err
		}
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}

// hashRouterID gives an IPv6-only node a stable 32-bit router ID. It is
// taken from 240.0.0.0/4 (reserved), so it never equals a real IPv4 node
// address.
func hashRouterID(name string) netip.Addr {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{0xf0 | byte(v>>24)&0x0f, byte(v >> 16), byte(v >> 8), byte(v)})
}

func resolvePassword(pw *api.BGPPassword, secrets SecretSource, what string, problem func(string, ...any)) (string, bool) {
	ref := pw.SecretKeyRef
	if ref == nil {
		return "", true
	}
	optional := ref.Optional != nil && *ref.Optional
	if secrets == nil {
		if optional {
			return "", true
		}
		problem("%s: no secret source configured; session skipped", what)
		return "", false
	}
	v, err := secrets.Secret(ref.Name, ref.Key)
	if err != nil {
		if optional && errors.Is(err, ErrSecretNotFound) {
			return "", true
		}
		// A session without its password would either never come up or,
		// worse, come up unauthenticated: leave it out.
		problem("%s: %v; session skipped", what, err)
		return "", false
	}
	return v, true
}

// community is a parsed community value.
type community struct {
	large   bool
	a, b, c uint32
}

func parseCommunity(v string) (community, error) {
	parts := strings.Split(v, ":")
	var c community
	var nums [3]uint64
	bits := 16
	switch len(parts) {
	case 2:
	case 3:
		c.large, bits = true, 32
	default:
		return c, fmt.Errorf("want aa:nn or aa:nn:mm")
	}
	for i, p := range parts {
		var n uint64
		if p == "" {
			return c, fmt.Errorf("empty part")
		}
		for _, r := range p {
			if r < '0' || r > '9' {
				return c, fmt.Errorf("%q is not a number", p)
			}
			n = n*10 + uint64(r-'0')
			if n >= 1<<bits {
				return c, fmt.Errorf("%s is out of range (%d bits)", p, bits)
			}
		}
		nums[i] = n
	}
	c.a, c.b, c.c = uint32(nums[0]), uint32(nums[1]), uint32(nums[2])
	return c, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
