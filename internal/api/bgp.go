package api

import (
	"fmt"
	"net"
	"strconv"
)

// BGPConfiguration holds BGP settings. The one named "default" holds the
// cluster-wide settings; one named "node.<node name>" overrides some of
// them (listenPort, logSeverityScreen, prefixAdvertisements, ...) for
// that node.
type BGPConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       BGPConfigurationSpec `json:"spec,omitempty"`
}

// BGPConfigurationSpec is the content of a BGPConfiguration.
type BGPConfigurationSpec struct {
	// LogSeverityScreen: Trace, Debug, Info (the default), Warning, Error, Fatal.
	LogSeverityScreen string `json:"logSeverityScreen,omitempty"`
	// NodeToNodeMeshEnabled: a full mesh of iBGP sessions between all
	// nodes (default true). Only on "default".
	NodeToNodeMeshEnabled *bool `json:"nodeToNodeMeshEnabled,omitempty"`
	// ASNumber of the nodes that set none themselves (default 64512).
	// Only on "default".
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// Kubernetes service ranges to advertise.
	ServiceLoadBalancerIPs []ServiceIPBlock `json:"serviceLoadBalancerIPs,omitempty"`
	ServiceExternalIPs     []ServiceIPBlock `json:"serviceExternalIPs,omitempty"`
	ServiceClusterIPs      []ServiceIPBlock `json:"serviceClusterIPs,omitempty"`
	// Communities names community values for prefixAdvertisements.
	Communities          []Community           `json:"communities,omitempty"`
	PrefixAdvertisements []PrefixAdvertisement `json:"prefixAdvertisements,omitempty"`
	// ListenPort of the BGP speaker (default 179).
	ListenPort uint16 `json:"listenPort,omitempty"`
	// NodeMeshPassword and NodeMeshMaxRestartTime apply to the mesh
	// sessions; only on "default", and not with the mesh disabled.
	NodeMeshPassword       *BGPPassword `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime *Duration    `json:"nodeMeshMaxRestartTime,omitempty"`
	// BindMode: None (listen on every address, the default) or NodeIP.
	BindMode *string `json:"bindMode,omitempty"`
	// IgnoredInterfaces are left out when reading device routes ('*' wildcards).
	IgnoredInterfaces []string `json:"ignoredInterfaces,omitempty"`
	// Addresses the node uses to peer with its local workloads.
	LocalWorkloadPeeringIPV4 string `json:"localWorkloadPeeringIPV4,omitempty"`
	LocalWorkloadPeeringIPV6 string `json:"localWorkloadPeeringIPV6,omitempty"`
	// ProgramClusterRoutes: Enabled or Disabled; whether the BGP speaker
	// programs routes to other nodes' blocks.
	ProgramClusterRoutes *string `json:"programClusterRoutes,omitempty"`
}

// ServiceIPBlock is one CIDR of service addresses to advertise.
type ServiceIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

// Community names a BGP community value: "aa:nn" (standard, 16-bit parts)
// or "aa:nn:mm" (large, 32-bit parts).
type Community struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// PrefixAdvertisement attaches communities (names or values) to a prefix.
type PrefixAdvertisement struct {
	CIDR        string   `json:"cidr,omitempty"`
	Communities []string `json:"communities,omitempty"`
}

// BGPPassword says where a BGP session's password comes from.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// SecretKeySelector names a key of a Kubernetes-style secret.
type SecretKeySelector struct {
	Name     string `json:"name,omitempty"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// Defaults of BGPConfiguration "default".
const (
	DefaultASNumber   = 64512
	DefaultListenPort = 179
	// BGPDefaultConfigName names the cluster-wide BGPConfiguration.
	BGPDefaultConfigName = "default"
)

func init() {
	Register(KindInfo{
		Kind:       "BGPConfiguration",
		Plural:     "bgpconfigurations",
		ShortNames: []string{"bgpconfiguration", "bgpconfig", "bgpconfigs"},
		New:        func() Resource { return &BGPConfiguration{} },
	})
}

// SetDefaults fills in the defaults of the cluster-wide configuration
// (the one named "default"): log severity Info, mesh on, AS 64512, listen
// port 179, bind mode None. A node-specific configuration is an override,
// so its unset fields stay unset: defaulting them would hide the
// cluster-wide values.
func (c *BGPConfiguration) SetDefaults() {
	if c.Name != BGPDefaultConfigName {
		return
	}
	s := &c.Spec
	if s.LogSeverityScreen == "" {
		s.LogSeverityScreen = "Info"
	}
	if s.NodeToNodeMeshEnabled == nil {
		s.NodeToNodeMeshEnabled = ptr(true)
	}
	if s.ASNumber == nil {
		s.ASNumber = ptr(ASNumberFrom(DefaultASNumber))
	}
	if s.ListenPort == 0 {
		s.ListenPort = DefaultListenPort
	}
	if s.BindMode == nil {
		s.BindMode = ptr("None")
	}
}

var (
	standardCommunityRE = newLazyRegexp(`^(\d+):(\d+)$`)
	largeCommunityRE    = newLazyRegexp(`^(\d+):(\d+):(\d+)$`)
)

// communityValid reports whether v is "aa:nn" with 16-bit parts or
// "aa:nn:mm" with 32-bit parts.
func communityValid(v string) bool {
	bits := 0
	var parts []string
	if m := standardCommunityRE.FindStringSubmatch(v); m != nil {
		bits, parts = 16, m[1:]
	} else if m := largeCommunityRE.FindStringSubmatch(v); m != nil {
		bits, parts = 32, m[1:]
	} else {
		return false
	}
	for _, part := range parts {
		if _, err := strconv.ParseUint(part, 10, bits); err != nil {
			return false
		}
	}
	return true
}

// Validate checks every field, and that the fields only the cluster-wide
// configuration may carry are not set on another one.
func (c *BGPConfiguration) Validate() ErrorList {
	var errs ErrorList
	s := &c.Spec
	p := Path("spec")
	if s.LogSeverityScreen != "" {
		checkEnum(&errs, p.Child("logSeverityScreen"), s.LogSeverityScreen, "Trace", "Debug", "Info", "Warning", "Error", "Fatal")
	}
	validateASNumber(&errs, p.Child("asNumber"), s.ASNumber)
	if c.Name != BGPDefaultConfigName {
		only := func(field string) {
			errs.Add(p.Child(field), "must not be set: only the BGPConfiguration named \"default\" may set it")
		}
		if s.NodeToNodeMeshEnabled != nil {
			only("nodeToNodeMeshEnabled")
		}
		if s.ASNumber != nil {
			only("asNumber")
		}
		if s.NodeMeshPassword != nil {
			only("nodeMeshPassword")
		}
		if s.NodeMeshMaxRestartTime != nil {
			only("nodeMeshMaxRestartTime")
		}
	}
	for _, f := range []struct {
		name   string
		blocks []ServiceIPBlock
	}{{"serviceLoadBalancerIPs", s.ServiceLoadBalancerIPs}, {"serviceExternalIPs", s.ServiceExternalIPs}, {"serviceClusterIPs", s.ServiceClusterIPs}} {
		for i, b := range f.blocks {
			if b.CIDR != "" {
				checkNet(&errs, p.Child(f.name).Index(i).Child("cidr"), b.CIDR)
			}
		}
	}
	names := map[string]bool{}
	for i, cm := range s.Communities {
		cp := p.Child("communities").Index(i)
		if cm.Name == "" {
			errs.Required(cp.Child("name"))
		} else {
			checkName(&errs, cp.Child("name"), cm.Name)
		}
		names[cm.Name] = true
		if cm.Value == "" {
			errs.Required(cp.Child("value"))
		} else if !communityValid(cm.Value) {
			errs.Invalid(cp.Child("value"), cm.Value, "is not a valid community (aa:nn with 16-bit numbers, or aa:nn:mm with 32-bit numbers)")
		}
	}
	if len(s.Communities) > 0 && len(s.PrefixAdvertisements) == 0 {
		errs.Add(p.Child("communities"), "are defined but no prefixAdvertisements use them")
	}
	for i, pa := range s.PrefixAdvertisements {
		pp := p.Child("prefixAdvertisements").Index(i)
		if pa.CIDR == "" {
			errs.Required(pp.Child("cidr"))
		} else {
			checkNet(&errs, pp.Child("cidr"), pa.CIDR)
		}
		if len(pa.Communities) == 0 {
			errs.Required(pp.Child("communities"))
		}
		for j, v := range pa.Communities {
			if !communityValid(v) && !names[v] {
				errs.Invalid(pp.Child("communities").Index(j), v, "is neither a community value (aa:nn or aa:nn:mm) nor the name of one in spec.communities")
			}
		}
	}
	mesh := s.NodeToNodeMeshEnabled == nil || *s.NodeToNodeMeshEnabled
	if !mesh && s.NodeMeshPassword != nil {
		errs.Add(p.Child("nodeMeshPassword"), "must not be set when nodeToNodeMeshEnabled is false")
	}
	if !mesh && s.NodeMeshMaxRestartTime != nil {
		errs.Add(p.Child("nodeMeshMaxRestartTime"), "must not be set when nodeToNodeMeshEnabled is false")
	}
	validatePassword(&errs, p.Child("nodeMeshPassword"), s.NodeMeshPassword)
	validateDuration(&errs, p.Child("nodeMeshMaxRestartTime"), s.NodeMeshMaxRestartTime)
	if s.BindMode != nil {
		checkEnum(&errs, p.Child("bindMode"), *s.BindMode, "None", "NodeIP")
	}
	for i, name := range s.IgnoredInterfaces {
		if name == "*" || !ignoredInterfaceRE.MatchString(name) {
			errs.Invalid(p.Child("ignoredInterfaces").Index(i), name, "is not a valid interface name or pattern (1-15 letters, digits, '_', '.', '-' or '*')")
		}
	}
	if s.LocalWorkloadPeeringIPV4 != "" {
		checkIP(&errs, p.Child("localWorkloadPeeringIPV4"), s.LocalWorkloadPeeringIPV4, 4)
	}
	if s.LocalWorkloadPeeringIPV6 != "" {
		checkIP(&errs, p.Child("localWorkloadPeeringIPV6"), s.LocalWorkloadPeeringIPV6, 6)
	}
	if s.ProgramClusterRoutes != nil {
		checkEnum(&errs, p.Child("programClusterRoutes"), *s.ProgramClusterRoutes, "Enabled", "Disabled")
	}
	return errs
}

func validatePassword(errs *ErrorList, p Path, pw *BGPPassword) {
	if pw == nil || pw.SecretKeyRef == nil {
		return
	}
	ref := pw.SecretKeyRef
	rp := p.Child("secretKeyRef")
	if ref.Name == "" {
		errs.Required(rp.Child("name"))
	} else {
		checkName(errs, rp.Child("name"), ref.Name)
	}
	if ref.Key == "" {
		errs.Required(rp.Child("key"))
	} else if !secretKeyRE.MatchString(ref.Key) || len(ref.Key) > 253 {
		errs.Invalid(rp.Child("key"), ref.Key, "is not a valid secret key (letters, digits, '-', '_' and '.')")
	}
}

var secretKeyRE = newLazyRegexp(`^[-._a-zA-Z0-9]+$`)

// BGPPeer is a BGP session (or a set of them): which nodes peer (node,
// nodeSelector, or all), with whom (peerIP, peerSelector for other nodes,
// or localWorkloadSelector for workloads) and how.
type BGPPeer struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       BGPPeerSpec `json:"spec,omitempty"`
}

// BGPPeerSpec is the content of a BGPPeer.
type BGPPeerSpec struct {
	// Node names the one node that peers; unset (and no nodeSelector)
	// means every node.
	Node         string `json:"node,omitempty"`
	NodeSelector string `json:"nodeSelector,omitempty"`
	// PeerIP is "IP", "IPv4:port" or "[IPv6]:port".
	PeerIP string `json:"peerIP,omitempty"`
	// ASNumber of the peer.
	ASNumber *ASNumber `json:"asNumber,omitempty"`
	// PeerSelector picks other nodes as peers (their own addresses and AS).
	PeerSelector string `json:"peerSelector,omitempty"`
	// KeepOriginalNextHop is deprecated in favour of NextHopMode.
	KeepOriginalNextHop bool         `json:"keepOriginalNextHop,omitempty"`
	Password            *BGPPassword `json:"password,omitempty"`
	// SourceAddress: UseNodeIP (the default) or None.
	SourceAddress string `json:"sourceAddress,omitempty"`
	// MaxRestartTime is the graceful-restart time (BIRD's default 120s).
	MaxRestartTime *Duration `json:"maxRestartTime,omitempty"`
	// KeepaliveTime is the BGP keepalive interval.
	KeepaliveTime *Duration `json:"keepaliveTime,omitempty"`
	// NumAllowedLocalASNumbers relaxes AS-path loop detection.
	NumAllowedLocalASNumbers *int32 `json:"numAllowedLocalASNumbers,omitempty"`
	// TTLSecurity enables GTSM with this many hops (0-255).
	TTLSecurity *uint8 `json:"ttlSecurity,omitempty"`
	// Filters names BGPFilter resources applied to the session.
	Filters []string `json:"filters,omitempty"`
	// ReachableBy is a gateway to add a static route to the peer through.
	ReachableBy string `json:"reachableBy,omitempty"`
	// LocalASNumber overrides the node's AS number for this session.
	LocalASNumber *ASNumber `json:"localASNumber,omitempty"`
	// LocalWorkloadSelector peers with the node's own workloads.
	LocalWorkloadSelector string `json:"localWorkloadSelector,omitempty"`
	// NextHopMode: Auto (the default), Self or Keep.
	NextHopMode *string `json:"nextHopMode,omitempty"`
	// ReversePeering: Auto (the default) or Manual.
	ReversePeering *string `json:"reversePeering,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "BGPPeer",
		Plural:     "bgppeers",
		ShortNames: []string{"bgppeer", "bgpp", "bgpps", "bp", "bps"},
		New:        func() Resource { return &BGPPeer{} },
	})
}

// SetDefaults sets nothing: every unset field of a BGPPeer has its
// documented meaning (sourceAddress UseNodeIP, nextHopMode Auto) without
// being written down, as Calico stores it.
func (b *BGPPeer) SetDefaults() {}

var (
	ipv4PortRE = newLazyRegexp(`^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$`)
	ipv6PortRE = newLazyRegexp(`^\[[0-9a-fA-F:.]+\]:(\d+)$`)
)

// ParsePeerIP splits "IP", "IPv4:port" or "[IPv6]:port" into the address and
// the port (0 when none is given).
func ParsePeerIP(s string) (net.IP, int, error) {
	host := s
	port := 0
	if ipv4PortRE.MatchString(s) || ipv6PortRE.MatchString(s) {
		h, ps, err := net.SplitHostPort(s)
		if err != nil {
			return nil, 0, err
		}
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return nil, 0, fmt.Errorf("invalid port %q (1-65535)", ps)
		}
		host, port = h, int(n)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("invalid address")
	}
	return ip, port, nil
}

// Validate checks the fields and which of them may be combined.
func (b *BGPPeer) Validate() ErrorList {
	var errs ErrorList
	s := &b.Spec
	p := Path("spec")
	if s.Node != "" {
		checkName(&errs, p.Child("node"), s.Node)
	}
	checkSelector(&errs, p.Child("nodeSelector"), s.NodeSelector)
	checkSelector(&errs, p.Child("peerSelector"), s.PeerSelector)
	checkSelector(&errs, p.Child("localWorkloadSelector"), s.LocalWorkloadSelector)
	var peerIP net.IP
	if s.PeerIP != "" {
		ip, _, err := ParsePeerIP(s.PeerIP)
		if err != nil {
			errs.Invalid(p.Child("peerIP"), s.PeerIP, `is not a valid peer address ("IP", "IPv4:port" or "[IPv6]:port")`)
		}
		peerIP = ip
	}
	validateASNumber(&errs, p.Child("asNumber"), s.ASNumber)
	validateASNumber(&errs, p.Child("localASNumber"), s.LocalASNumber)
	asSet := s.ASNumber != nil && s.ASNumber.String() != "0"
	if s.Node != "" && s.NodeSelector != "" {
		errs.Add(p.Child("node"), "must not be set together with nodeSelector")
	}
	if s.PeerIP != "" && s.PeerSelector != "" {
		errs.Add(p.Child("peerIP"), "must not be set together with peerSelector")
	}
	if asSet && s.PeerSelector != "" {
		errs.Add(p.Child("asNumber"), "must not be set together with peerSelector (the selected nodes' own AS numbers are used)")
	}
	if s.LocalWorkloadSelector != "" {
		if !asSet {
			errs.Add(p.Child("asNumber"), "is required with localWorkloadSelector")
		}
		if s.PeerIP != "" {
			errs.Add(p.Child("peerIP"), "must not be set together with localWorkloadSelector")
		}
		if s.PeerSelector != "" {
			errs.Add(p.Child("peerSelector"), "must not be set together with localWorkloadSelector")
		}
	}
	if s.ReachableBy != "" {
		rb := net.ParseIP(s.ReachableBy)
		switch {
		case rb == nil:
			errs.Invalid(p.Child("reachableBy"), s.ReachableBy, "is not a valid IP address")
		case s.PeerIP == "":
			errs.Add(p.Child("reachableBy"), "must not be set without peerIP")
		case peerIP != nil && ipVersion(rb) != ipVersion(peerIP):
			errs.Invalid(p.Child("reachableBy"), s.ReachableBy, "is not of the same IP version as peerIP")
		}
	}
	if s.KeepOriginalNextHop && s.NextHopMode != nil {
		errs.Add(p.Child("keepOriginalNextHop"), "must not be true when nextHopMode is set (it is deprecated; use nextHopMode: Keep)")
	}
	validatePassword(&errs, p.Child("password"), s.Password)
	if s.SourceAddress != "" {
		checkEnum(&errs, p.Child("sourceAddress"), s.SourceAddress, "UseNodeIP", "None")
	}
	validateDuration(&errs, p.Child("maxRestartTime"), s.MaxRestartTime)
	validateDuration(&errs, p.Child("keepaliveTime"), s.KeepaliveTime)
	if n := s.NumAllowedLocalASNumbers; n != nil && *n < 0 {
		errs.Invalid(p.Child("numAllowedLocalASNumbers"), *n, "must not be negative")
	}
	for i, f := range s.Filters {
		checkName(&errs, p.Child("filters").Index(i), f)
	}
	if s.NextHopMode != nil {
		checkEnum(&errs, p.Child("nextHopMode"), *s.NextHopMode, "Auto", "Self", "Keep")
	}
	if s.ReversePeering != nil {
		checkEnum(&errs, p.Child("reversePeering"), *s.ReversePeering, "Auto", "Manual")
	}
	return errs
}
