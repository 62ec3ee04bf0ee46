// Package hoststate is the contract between the calculation graph
// (internal/calc), which decides what one host must enforce, and the
// dataplane managers (internal/dataplane), which program it into the kernel.
//
// Everything here is already resolved for this host: selectors have become
// IP set IDs, named ports have become named-port sets, policies are listed
// per endpoint in the order they are evaluated. The dataplane needs no
// knowledge of selectors, namespaces or the datastore.
//
// The calculation graph reports changes through Callbacks, in an order the
// dataplane can apply safely: an IP set before the first rule that refers
// to it, a policy before the first endpoint that uses it, and removals the
// other way round.
//
//	calc ──Callbacks──▶ batching queue (in serval-node) ──▶ dataplane.Apply
package hoststate

import (
	"net/netip"
	"time"
)

// IPSetType says what the members of a set are.
type IPSetType int

const (
	// IPSetNets: members are address prefixes (/32 and /128 for
	// endpoints, any prefix for network sets).
	IPSetNets IPSetType = iota + 1
	// IPSetNetPorts: members are (address, protocol, port) triples; named
	// ports resolve to these.
	IPSetNetPorts
)

// IPSetMember is one element of a set. Protocol and Port are zero in an
// IPSetNets set.
type IPSetMember struct {
	Prefix   netip.Prefix
	Protocol uint8
	Port     uint16
}

// IPSet is a whole set. ID is stable and short (a selector's UniqueID, or
// a hash for a named-port set) and fit for a kernel set name once the
// dataplane has shortened it.
type IPSet struct {
	ID      string
	Type    IPSetType
	Members []IPSetMember
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// Action of a rule; the values are Calico's.
type Action string

const (
	Allow Action = "Allow"
	Deny  Action = "Deny"
	Pass  Action = "Pass"
	Log   Action = "Log"
)

// Rule is a Calico rule with every selector resolved. All the criteria that
// are set must match (AND). Within one list the entries are alternatives
// (OR), except the "Not" set-ID lists, where a match of any one excludes the
// packet. Empty lists and nil pointers mean "no criterion".
type Rule struct {
	Action    Action
	IPVersion int // 0: both; 4 or 6: only that family
	// Protocol and NotProtocol are IP protocol numbers (6 TCP, 17 UDP, 1
	// ICMP, 58 ICMPv6, 132 SCTP, 136 UDPLite, ...).
	Protocol    *uint8
	NotProtocol *uint8
	// ICMP type and code (code only with type); the Not forms exclude.
	ICMPType, ICMPCode       *uint8
	NotICMPType, NotICMPCode *uint8

	SrcNets, NotSrcNets []netip.Prefix
	DstNets, NotDstNets []netip.Prefix
	// SrcIPSetIDs: the source must be in every one of these sets (one per
	// selector term: selector, namespaceSelector, serviceAccounts...).
	SrcIPSetIDs, NotSrcIPSetIDs []string
	DstIPSetIDs, NotDstIPSetIDs []string

	SrcPorts, NotSrcPorts []PortRange
	DstPorts, NotDstPorts []PortRange
	// Named ports: the packet matches when its (address, protocol, port)
	// is in one of these IPSetNetPorts sets. A rule with numeric ports and
	// named ports matches either (Calico's semantics).
	SrcNamedPortIPSetIDs, NotSrcNamedPortIPSetIDs []string
	DstNamedPortIPSetIDs, NotDstNamedPortIPSetIDs []string

	// ID is a short hash of the rule and its position, unique in its
	// policy; it goes into the kernel rule's comment so that a reader of
	// `nft list` can trace a rule back to its policy.
	ID string
}

// PolicyID names a policy. Name is "namespace/name" for a NetworkPolicy and
// "name" for a GlobalNetworkPolicy; Kind tells them apart.
type PolicyID struct {
	Tier string
	Kind string // "GlobalNetworkPolicy" or "NetworkPolicy"
	Name string
}

// Policy is one policy's rules, as they apply on this host.
type Policy struct {
	ID             PolicyID
	InboundRules   []Rule // the policy's ingress rules
	OutboundRules  []Rule // the policy's egress rules
	Untracked      bool   // doNotTrack
	PreDNAT        bool
	ApplyOnForward bool
}

// Profile is a profile's rules; endpoints evaluate their profiles after
// every tier, in the order they list them.
type Profile struct {
	Name          string
	InboundRules  []Rule
	OutboundRules []Rule
}

// TierPolicies is one tier as it applies to one endpoint: the policies of
// the tier that select the endpoint, in evaluation order (policy order, then
// name). A tier without any policy selecting the endpoint is left out.
type TierPolicies struct {
	Name string
	// DefaultAction ends the tier when policies selected the endpoint but
	// none of their rules decided: Deny (the default) or Pass.
	DefaultAction   Action
	IngressPolicies []PolicyID // policies of type Ingress
	EgressPolicies  []PolicyID // policies of type Egress
}

// EndpointID names an endpoint: namespace/name for a WorkloadEndpoint,
// name for a HostEndpoint.
type EndpointID string

// WorkloadEndpoint is a local workload's interface and what applies to it.
type WorkloadEndpoint struct {
	ID            EndpointID
	InterfaceName string // the host side of the veth
	MAC           string // the workload's MAC, when known
	IPv4Nets      []netip.Prefix
	IPv6Nets      []netip.Prefix
	Tiers         []TierPolicies
	ProfileIDs    []string
	// IPNATs are the workload's floating IPs: each External address is
	// DNATed 1:1 to Internal (one of the workload's addresses) on this
	// host, and routed towards the workload so that BGP can export it.
	IPNATs []IPNAT
	// AllowSpoofedSourcePrefixes are source prefixes the workload may send
	// from besides its own addresses. The dataplane honours them only
	// while Config.AllowSourceSpoofing is set.
	AllowSpoofedSourcePrefixes []netip.Prefix
}

// IPNAT is one floating IP of a workload: both addresses of one family.
type IPNAT struct {
	Internal, External netip.Addr
}

// HostEndpoint is a host interface under policy. InterfaceName is "*" for
// all the host's interfaces.
type HostEndpoint struct {
	ID             EndpointID
	InterfaceName  string
	ExpectedIPs    []netip.Addr
	Tiers          []TierPolicies // normal policy
	UntrackedTiers []TierPolicies // doNotTrack policies
	PreDNATTiers   []TierPolicies // preDNAT policies
	ForwardTiers   []TierPolicies // applyOnForward policies
	ProfileIDs     []string
}

// IPPool is what the dataplane needs of a pool: its range (to know what is
// "inside the cluster") and whether traffic from it leaving every pool is
// masqueraded.
type IPPool struct {
	CIDR        netip.Prefix
	NATOutgoing bool
	Disabled    bool
}

// Config is the node agent's settings that the dataplane acts on (from
// FelixConfiguration), already merged and defaulted.
type Config struct {
	InterfacePrefixes []string // workload interface name prefixes, e.g. ["cali"]
	// DefaultEndpointToHostAction: Drop (default), Accept or Return.
	DefaultEndpointToHostAction string
	FailsafeInboundHostPorts    []ProtoPort
	FailsafeOutboundHostPorts   []ProtoPort
	LogPrefix                   string
	// LogRate limits the Log action (FelixConfiguration
	// logActionRateLimit/Burst); a zero Rate means no limit.
	LogRate RateLimit
	// DenyAction is what policy Deny does: "Drop" (the default, also "")
	// or "Reject" (an ICMP error or TCP reset is sent back).
	DenyAction string
	// IPForwardingDisabled: the agent leaves net.ipv4.ip_forward and
	// net.ipv6.conf.all.forwarding alone (ipForwarding: Disabled).
	IPForwardingDisabled bool
	// AllowSourceSpoofing: workloads' allowSpoofedSourcePrefixes are
	// honoured (workloadSourceSpoofing: Any).
	AllowSourceSpoofing bool
	// NATOutgoingAddress, when valid, is the source natOutgoing SNATs
	// IPv4 traffic to, instead of masquerading to the outgoing
	// interface's address.
	NATOutgoingAddress netip.Addr
	// InterfaceExclude lists host interfaces that an all-interfaces ("*")
	// host endpoint never covers: exact names, or regular expressions
	// written between slashes ("/^kube-ipvs/").
	InterfaceExclude []string
	// Periodic resyncs of the dataplane's managers: nil keeps the
	// dataplane's default, zero disables the periodic resync.
	RouteRefreshInterval     *time.Duration
	InterfaceRefreshInterval *time.Duration
	NftablesRefreshInterval  *time.Duration
}

// RateLimit is Calico's "N/unit" rate with a burst: at most Rate per Unit
// ("second", "minute", "hour", "day") after an initial Burst.
type RateLimit struct {
	Rate  uint32
	Unit  string
	Burst uint32
}

// ProtoPort is a protocol and port, e.g. TCP 22 for a failsafe port.
type ProtoPort struct {
	Protocol uint8
	Port     uint16
	Net      netip.Prefix // zero: any address
}

// Callbacks receive the calculation graph's output. They are called from
// the graph's single goroutine and must not block for long (serval-node
// queues them and hands them to the dataplane in batches).
type Callbacks interface {
	OnIPSetUpdate(set IPSet) // a new set or a full replacement
	OnIPSetDelta(id string, added, removed []IPSetMember)
	OnIPSetRemove(id string)

	OnPolicyUpdate(p Policy)
	OnPolicyRemove(id PolicyID)
	OnProfileUpdate(p Profile)
	OnProfileRemove(name string)

	OnWorkloadEndpointUpdate(ep WorkloadEndpoint)
	OnWorkloadEndpointRemove(id EndpointID)
	OnHostEndpointUpdate(ep HostEndpoint)
	OnHostEndpointRemove(id EndpointID)

	OnIPPoolUpdate(name string, pool IPPool)
	OnIPPoolRemove(name string)
	// OnLocalBlockUpdate reports an IPAM block affine to this host (the
	// dataplane installs a blackhole route for it); OnLocalBlockRemove
	// when the affinity is gone.
	OnLocalBlockUpdate(cidr netip.Prefix)
	OnLocalBlockRemove(cidr netip.Prefix)

	OnConfigUpdate(cfg Config)
	// OnInSync says the graph has processed the datastore's whole initial
	// state; nothing may be deleted from the kernel before it.
	OnInSync()
}
