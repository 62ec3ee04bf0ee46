package routing

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"
	"time"
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
