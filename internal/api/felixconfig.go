package api

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// FelixConfiguration holds the node agent's settings (the name is Calico's,
// kept so that manifests apply unchanged). The one named "default" applies
// to every node; "node.<node name>" overrides it for one node. Every field
// is optional and unset fields stay unset: the agent has a default for
// each, and a node-specific configuration must not hide the cluster-wide
// value. Every field is checked; what Serval does with each is in
// docs/COMPATIBILITY.md: enforced, refused when set to a value Serval
// cannot honour (the refusals are in support.go), or not applicable —
// accepted, checked and ignored because it only concerns Calico's other
// dataplanes (iptables, eBPF, XDP, Windows) or components Serval does not
// have.
type FelixConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       FelixConfigurationSpec `json:"spec,omitempty"`
}

// FelixConfigurationSpec is the content of a FelixConfiguration. The "v"
// tags name the check each field gets (see validateTagged); durations and
// ports are checked by type.
type FelixConfigurationSpec struct {
	UseInternalDataplaneDriver     *bool     `json:"useInternalDataplaneDriver,omitempty"`
	DataplaneDriver                string    `json:"dataplaneDriver,omitempty"`
	DataplaneWatchdogTimeout       *Duration `json:"dataplaneWatchdogTimeout,omitempty"`
	IPv6Support                    *bool     `json:"ipv6Support,omitempty"`
	RouteRefreshInterval           *Duration `json:"routeRefreshInterval,omitempty"`
	InterfaceRefreshInterval       *Duration `json:"interfaceRefreshInterval,omitempty"`
	IptablesRefreshInterval        *Duration `json:"iptablesRefreshInterval,omitempty"`
	IptablesPostWriteCheckInterval *Duration `json:"iptablesPostWriteCheckInterval,omitempty"`
	IptablesLockFilePath           string    `json:"iptablesLockFilePath,omitempty"`
	IptablesLockTimeout            *Duration `json:"iptablesLockTimeout,omitempty"`
	IptablesLockProbeInterval      *Duration `json:"iptablesLockProbeInterval,omitempty"`
	FeatureDetectOverride          string    `json:"featureDetectOverride,omitempty" v:"kv"`
	FeatureGates                   string    `json:"featureGates,omitempty" v:"kv"`
	IpsetsRefreshInterval          *Duration `json:"ipsetsRefreshInterval,omitempty"`
	MaxIpsetSize                   *int      `json:"maxIpsetSize,omitempty" v:"min=0"`
	IptablesBackend                *string   `json:"iptablesBackend,omitempty" v:"enumfold=Legacy|NFT|Auto"`
	XDPRefreshInterval             *Duration `json:"xdpRefreshInterval,omitempty"`
	NetlinkTimeout                 *Duration `json:"netlinkTimeout,omitempty"`
	MetadataAddr                   string    `json:"metadataAddr,omitempty"`
	MetadataPort                   *int      `json:"metadataPort,omitempty" v:"range=0:65535"`
	OpenstackRegion                string    `json:"openstackRegion,omitempty" v:"region"`
	// InterfacePrefix is the prefix of workload interfaces ("cali").
	InterfacePrefix             string  `json:"interfacePrefix,omitempty"`
	InterfaceExclude            string  `json:"interfaceExclude,omitempty"`
	ChainInsertMode             string  `json:"chainInsertMode,omitempty" v:"enumfold=insert|append"`
	DefaultEndpointToHostAction string  `json:"defaultEndpointToHostAction,omitempty" v:"enum=Drop|Accept|Return"`
	IptablesFilterAllowAction   string  `json:"iptablesFilterAllowAction,omitempty" v:"enum=Accept|Return"`
	IptablesMangleAllowAction   string  `json:"iptablesMangleAllowAction,omitempty" v:"enum=Accept|Return"`
	IptablesFilterDenyAction    string  `json:"iptablesFilterDenyAction,omitempty" v:"enum=Drop|Reject"`
	LogPrefix                   string  `json:"logPrefix,omitempty"`
	LogActionRateLimit          *string `json:"logActionRateLimit,omitempty" v:"ratelimit"`
	LogActionRateLimitBurst     *int    `json:"logActionRateLimitBurst,omitempty" v:"min=0"`
	LogFilePath                 string  `json:"logFilePath,omitempty"`
	LogSeverityFile             string  `json:"logSeverityFile,omitempty" v:"loglevel"`
	LogSeverityScreen           string  `json:"logSeverityScreen,omitempty" v:"loglevel"`
	LogSeveritySys              string  `json:"logSeveritySys,omitempty" v:"loglevel"`
	LogDebugFilenameRegex       string  `json:"logDebugFilenameRegex,omitempty" v:"regexp"`

	IPIPEnabled                    *bool `json:"ipipEnabled,omitempty"`
	IPIPMTU                        *int  `json:"ipipMTU,omitempty" v:"min=0"`
	VXLANEnabled                   *bool `json:"vxlanEnabled,omitempty"`
	VXLANMTU                       *int  `json:"vxlanMTU,omitempty" v:"min=0"`
	VXLANMTUV6                     *int  `json:"vxlanMTUV6,omitempty" v:"min=0"`
	VXLANPort                      *int  `json:"vxlanPort,omitempty" v:"range=0:65535"`
	VXLANVNI                       *int  `json:"vxlanVNI,omitempty" v:"range=0:16777215"`
	AllowVXLANPacketsFromWorkloads *bool `json:"allowVXLANPacketsFromWorkloads,omitempty"`
	AllowIPIPPacketsFromWorkloads  *bool `json:"allowIPIPPacketsFromWorkloads,omitempty"`

	ReportingInterval        *Duration `json:"reportingInterval,omitempty"`
	ReportingTTL             *Duration `json:"reportingTTL,omitempty"`
	EndpointReportingEnabled *bool     `json:"endpointReportingEnabled,omitempty"`
	EndpointReportingDelay   *Duration `json:"endpointReportingDelay,omitempty"`
	EndpointStatusPathPrefix string    `json:"endpointStatusPathPrefix,omitempty"`

	IptablesMarkMask             *uint32 `json:"iptablesMarkMask,omitempty"`
	DisableConntrackInvalidCheck *bool   `json:"disableConntrackInvalidCheck,omitempty"`

	HealthEnabled          *bool                   `json:"healthEnabled,omitempty"`
	HealthHost             *string                 `json:"healthHost,omitempty" v:"host"`
	HealthPort             *int                    `json:"healthPort,omitempty" v:"range=0:65535"`
	HealthTimeoutOverrides []HealthTimeoutOverride `json:"healthTimeoutOverrides,omitempty"`

	PrometheusMetricsEnabled          *bool  `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsHost             string `json:"prometheusMetricsHost,omitempty" v:"host"`
	PrometheusMetricsPort             *int   `json:"prometheusMetricsPort,omitempty" v:"range=0:65535"`
	PrometheusGoMetricsEnabled        *bool  `json:"prometheusGoMetricsEnabled,omitempty"`
	PrometheusProcessMetricsEnabled   *bool  `json:"prometheusProcessMetricsEnabled,omitempty"`
	PrometheusWireGuardMetricsEnabled *bool  `json:"prometheusWireGuardMetricsEnabled,omitempty"`

	// FailsafeInboundHostPorts and FailsafeOutboundHostPorts stay open
	// whatever the policy says, so that a host cannot be cut off.
	FailsafeInboundHostPorts  *[]ProtoPort `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts *[]ProtoPort `json:"failsafeOutboundHostPorts,omitempty"`
	KubeNodePortRanges        *[]Port      `json:"kubeNodePortRanges,omitempty"`

	PolicySyncPathPrefix       string    `json:"policySyncPathPrefix,omitempty"`
	UsageReportingEnabled      *bool     `json:"usageReportingEnabled,omitempty"`
	UsageReportingInitialDelay *Duration `json:"usageReportingInitialDelay,omitempty"`
	UsageReportingInterval     *Duration `json:"usageReportingInterval,omitempty"`

	NATOutgoingAddress           string    `json:"natOutgoingAddress,omitempty" v:"ipv4"`
	NATOutgoingExclusions        *string   `json:"natOutgoingExclusions,omitempty" v:"enum=IPPoolsOnly|IPPoolsAndHostIPs"`
	NATPortRange                 *Port     `json:"natPortRange,omitempty"`
	DeviceRouteSourceAddress     string    `json:"deviceRouteSourceAddress,omitempty" v:"ipv4"`
	DeviceRouteSourceAddressIPv6 string    `json:"deviceRouteSourceAddressIPv6,omitempty" v:"ipv6"`
	DeviceRouteProtocol          *int      `json:"deviceRouteProtocol,omitempty" v:"range=0:255"`
	RemoveExternalRoutes         *bool     `json:"removeExternalRoutes,omitempty"`
	ExternalNodesCIDRList        *[]string `json:"externalNodesCIDRList,omitempty" v:"cidrs4"`

	IPv4ElevatedRoutePriority *int `json:"ipv4ElevatedRoutePriority,omitempty" v:"range=1:2147483646"`
	IPv6ElevatedRoutePriority *int `json:"ipv6ElevatedRoutePriority,omitempty" v:"range=1:2147483646"`
	IPv4NormalRoutePriority   *int `json:"ipv4NormalRoutePriority,omitempty" v:"range=1:2147483646"`
	IPv6NormalRoutePriority   *int `json:"ipv6NormalRoutePriority,omitempty" v:"range=1:2147483646"`

	DebugMemoryProfilePath           string    `json:"debugMemoryProfilePath,omitempty"`
	DebugDisableLogDropping          *bool     `json:"debugDisableLogDropping,omitempty"`
	DebugSimulateCalcGraphHangAfter  *Duration `json:"debugSimulateCalcGraphHangAfter,omitempty"`
	DebugSimulateDataplaneHangAfter  *Duration `json:"debugSimulateDataplaneHangAfter,omitempty"`
	DebugSimulateDataplaneApplyDelay *Duration `json:"debugSimulateDataplaneApplyDelay,omitempty"`
	DebugHost                        *string   `json:"debugHost,omitempty" v:"host"`
	DebugPort                        *int      `json:"debugPort,omitempty" v:"range=0:65535"`

	IptablesNATOutgoingInterfaceFilter string `json:"iptablesNATOutgoingInterfaceFilter,omitempty" v:"ifacefilter"`
	SidecarAccelerationEnabled         *bool  `json:"sidecarAccelerationEnabled,omitempty"`
	XDPEnabled                         *bool  `json:"xdpEnabled,omitempty"`
	GenericXDPEnabled                  *bool  `json:"genericXDPEnabled,omitempty"`

	// NFTablesMode: Enabled, Disabled or Auto.
	NFTablesMode              *string   `json:"nftablesMode,omitempty" v:"enum=Enabled|Disabled|Auto"`
	NftablesRefreshInterval   *Duration `json:"nftablesRefreshInterval,omitempty"`
	NftablesFilterAllowAction string    `json:"nftablesFilterAllowAction,omitempty" v:"enum=Accept|Return"`
	NftablesMangleAllowAction string    `json:"nftablesMangleAllowAction,omitempty" v:"enum=Accept|Return"`
	NftablesFilterDenyAction  string    `json:"nftablesFilterDenyAction,omitempty" v:"enum=Drop|Reject"`
	NftablesMarkMask          *uint32   `json:"nftablesMarkMask,omitempty"`

	BPFEnabled                         *bool                 `json:"bpfEnabled,omitempty"`
	BPFDisableUnprivileged             *bool                 `json:"bpfDisableUnprivileged,omitempty"`
	BPFLogLevel                        string                `json:"bpfLogLevel,omitempty" v:"enum=Off|Info|Debug"`
	BPFLogFilters                      *map[string]string    `json:"bpfLogFilters,omitempty" v:"ifacekeys"`
	BPFCTLBLogFilter                   string                `json:"bpfCTLBLogFilter,omitempty"`
	BPFDataIfacePattern                string                `json:"bpfDataIfacePattern,omitempty" v:"regexp"`
	BPFL3IfacePattern                  string                `json:"bpfL3IfacePattern,omitempty" v:"regexp"`
	BPFConnectTimeLoadBalancingEnabled *bool                 `json:"bpfConnectTimeLoadBalancingEnabled,omitempty"`
	BPFConnectTimeLoadBalancing        *string               `json:"bpfConnectTimeLoadBalancing,omitempty" v:"enum=TCP|Enabled|Disabled"`
	BPFHostNetworkedNATWithoutCTLB     *string               `json:"bpfHostNetworkedNATWithoutCTLB,omitempty" v:"enum=Enabled|Disabled"`
	BPFExternalServiceMode             string                `json:"bpfExternalServiceMode,omitempty" v:"enum=Tunnel|DSR"`
	BPFDSROptoutCIDRs                  *[]string             `json:"bpfDSROptoutCIDRs,omitempty" v:"cidrs"`
	BPFExtToServiceConnmark            *int                  `json:"bpfExtToServiceConnmark,omitempty" v:"min=0"`
	BPFKubeProxyIptablesCleanupEnabled *bool                 `json:"bpfKubeProxyIptablesCleanupEnabled,omitempty"`
	BPFKubeProxyMinSyncPeriod          *Duration             `json:"bpfKubeProxyMinSyncPeriod,omitempty"`
	BPFKubeProxyHealthzPort            *int                  `json:"bpfKubeProxyHealthzPort,omitempty" v:"range=0:65535"`
	BPFKubeProxyEndpointSlicesEnabled  *bool                 `json:"bpfKubeProxyEndpointSlicesEnabled,omitempty"`
	BPFPSNATPorts                      *Port                 `json:"bpfPSNATPorts,omitempty"`
	BPFMapSizeNATFrontend              *int                  `json:"bpfMapSizeNATFrontend,omitempty" v:"min=0"`
	BPFMapSizeNATBackend               *int                  `json:"bpfMapSizeNATBackend,omitempty" v:"min=0"`
	BPFMapSizeNATAffinity              *int                  `json:"bpfMapSizeNATAffinity,omitempty" v:"min=0"`
	BPFMapSizeRoute                    *int                  `json:"bpfMapSizeRoute,omitempty" v:"min=0"`
	BPFMapSizeConntrack                *int                  `json:"bpfMapSizeConntrack,omitempty" v:"min=0"`
	BPFMapSizePerCPUConntrack          *int                  `json:"bpfMapSizePerCpuConntrack,omitempty" v:"min=0"`
	BPFMapSizeConntrackScaling         string                `json:"bpfMapSizeConntrackScaling,omitempty" v:"enum=Disabled|DoubleIfFull"`
	BPFMapSizeConntrackCleanupQueue    *int                  `json:"bpfMapSizeConntrackCleanupQueue,omitempty" v:"min=1"`
	BPFMapSizeIPSets                   *int                  `json:"bpfMapSizeIPSets,omitempty" v:"min=0"`
	BPFMapSizeIfState                  *int                  `json:"bpfMapSizeIfState,omitempty" v:"min=0"`
	BPFHostConntrackBypass             *bool                 `json:"bpfHostConntrackBypass,omitempty"`
	BPFEnforceRPF                      string                `json:"bpfEnforceRPF,omitempty" v:"enumfold=Disabled|Strict|Loose"`
	BPFPolicyDebugEnabled              *bool                 `json:"bpfPolicyDebugEnabled,omitempty"`
	BPFForceTrackPacketsFromIfaces     *[]string             `json:"bpfForceTrackPacketsFromIfaces,omitempty" v:"ifacefilters"`
	BPFDisableGROForIfaces             string                `json:"bpfDisableGROForIfaces,omitempty" v:"regexp"`
	BPFExcludeCIDRsFromNAT             *[]string             `json:"bpfExcludeCIDRsFromNAT,omitempty" v:"cidrs"`
	BPFExportBufferSizeMB              *int                  `json:"bpfExportBufferSizeMB,omitempty" v:"min=0"`
	BPFRedirectToPeer                  string                `json:"bpfRedirectToPeer,omitempty" v:"enum=Disabled|Enabled|L2Only"`
	BPFAttachType                      *string               `json:"bpfAttachType,omitempty" v:"enum=TC|TCX"`
	BPFProfiling                       string                `json:"bpfProfiling,omitempty" v:"enum=Disabled|Enabled"`
	BPFConntrackLogLevel               string                `json:"bpfConntrackLogLevel,omitempty" v:"enum=Off|Debug"`
	BPFConntrackCleanupMode            *string               `json:"bpfConntrackCleanupMode,omitempty" v:"enum=Auto|Userspace|BPFProgram"`
	BPFConntrackTimeouts               *BPFConntrackTimeouts `json:"bpfConntrackTimeouts,omitempty"`
	BPFJITHardening                    *string               `json:"bpfJITHardening,omitempty" v:"enum=Auto|Strict"`
	BPFMaglevMaxEndpointsPerService    *int                  `json:"bpfMaglevMaxEndpointsPerService,omitempty" v:"min=1"`
	BPFMaglevMaxServices               *int                  `json:"bpfMaglevMaxServices,omitempty" v:"min=1"`

	// RouteSource: CalicoIPAM (blocks) or WorkloadIPs (each address).
	RouteSource       string             `json:"routeSource,omitempty" v:"enum=WorkloadIPs|CalicoIPAM"`
	RouteSyncDisabled *bool              `json:"routeSyncDisabled,omitempty"`
	RouteTableRange   *RouteTableRange   `json:"routeTableRange,omitempty"`
	RouteTableRanges  *[]RouteTableRange `json:"routeTableRanges,omitempty"`
	// ServiceLoopPrevention: Drop, Reject or Disabled.
	ServiceLoopPrevention  string `json:"serviceLoopPrevention,omitempty" v:"enum=Drop|Reject|Disabled"`
	WorkloadSourceSpoofing string `json:"workloadSourceSpoofing,omitempty" v:"enum=Disabled|Any"`
	MTUIfacePattern        string `json:"mtuIfacePattern,omitempty" v:"regexp"`
	RequireMTUFile         *bool  `json:"requireMTUFile,omitempty"`

	FloatingIPs                *string `json:"floatingIPs,omitempty" v:"enum=Enabled|Disabled"`
	WindowsManageFirewallRules *string `json:"windowsManageFirewallRules,omitempty" v:"enum=Enabled|Disabled"`

	WireguardEnabled               *bool     `json:"wireguardEnabled,omitempty"`
	WireguardEnabledV6             *bool     `json:"wireguardEnabledV6,omitempty"`
	WireguardListeningPort         *int      `json:"wireguardListeningPort,omitempty" v:"range=1:65535"`
	WireguardListeningPortV6       *int      `json:"wireguardListeningPortV6,omitempty" v:"range=1:65535"`
	WireguardRoutingRulePriority   *int      `json:"wireguardRoutingRulePriority,omitempty" v:"range=1:32765"`
	WireguardInterfaceName         string    `json:"wireguardInterfaceName,omitempty" v:"iface"`
	WireguardInterfaceNameV6       string    `json:"wireguardInterfaceNameV6,omitempty" v:"iface"`
	WireguardMTU                   *int      `json:"wireguardMTU,omitempty" v:"min=0"`
	WireguardMTUV6                 *int      `json:"wireguardMTUV6,omitempty" v:"min=0"`
	WireguardHostEncryptionEnabled *bool     `json:"wireguardHostEncryptionEnabled,omitempty"`
	WireguardKeepAlive             *Duration `json:"wireguardKeepAlive,omitempty"`
	WireguardThreadingEnabled      *bool     `json:"wireguardThreadingEnabled,omitempty"`

	AWSSrcDstCheck *string `json:"awsSrcDstCheck,omitempty" v:"enum=DoNothing|Enable|Disable"`
	CgroupV2Path   string  `json:"cgroupV2Path,omitempty"`

	FlowLogsFlushInterval        *Duration `json:"flowLogsFlushInterval,omitempty"`
	FlowLogsCollectorDebugTrace  *bool     `json:"flowLogsCollectorDebugTrace,omitempty"`
	FlowLogsGoldmaneServer       *string   `json:"flowLogsGoldmaneServer,omitempty"`
	FlowLogsLocalReporter        *string   `json:"flowLogsLocalReporter,omitempty" v:"enum=Enabled|Disabled"`
	FlowLogsPolicyEvaluationMode *string   `json:"flowLogsPolicyEvaluationMode,omitempty" v:"enum=None|Continuous"`

	// IPForwarding: Enabled (the default) or Disabled.
	IPForwarding         string  `json:"ipForwarding,omitempty" v:"enum=Enabled|Disabled"`
	ProgramClusterRoutes *string `json:"programClusterRoutes,omitempty" v:"enum=Enabled|Disabled"`
	IstioAmbientMode     *string `json:"istioAmbientMode,omitempty" v:"enum=Enabled|Disabled"`

	GoGCThreshold   *int `json:"goGCThreshold,omitempty" v:"min=-1"`
	GoMemoryLimitMB *int `json:"goMemoryLimitMB,omitempty" v:"min=-1"`
	GoMaxProcs      *int `json:"goMaxProcs,omitempty" v:"min=-1"`
}

// ProtoPort is a failsafe port: protocol TCP, UDP or SCTP, a port, and
// optionally the network the other end is in.
type ProtoPort struct {
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

// HealthTimeoutOverride changes how long one of the agent's components
// may go without reporting before it is considered unhealthy.
type HealthTimeoutOverride struct {
	Name    string   `json:"name"`
	Timeout Duration `json:"timeout"`
}

// RouteTableRange is a range of kernel routing table numbers.
type RouteTableRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// BPFConntrackTimeouts sets conntrack timeouts of the BPF dataplane; each
// is a duration or "Auto".
type BPFConntrackTimeouts struct {
	CreationGracePeriod *string `json:"creationGracePeriod,omitempty"`
	TCPSynSent          *string `json:"tcpSynSent,omitempty"`
	TCPEstablished      *string `json:"tcpEstablished,omitempty"`
	TCPFinsSeen         *string `json:"tcpFinsSeen,omitempty"`
	TCPResetSeen        *string `json:"tcpResetSeen,omitempty"`
	UDPTimeout          *string `json:"udpTimeout,omitempty"`
	GenericTimeout      *string `json:"genericTimeout,omitempty"`
	ICMPTimeout         *string `json:"icmpTimeout,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "FelixConfiguration",
		Plural:     "felixconfigurations",
		ShortNames: []string{"felixconfiguration", "felixconfig", "felixconfigs"},
		New:        func() Resource { return &FelixConfiguration{} },
	})
}

// SetDefaults sets nothing (see FelixConfiguration).
func (f *FelixConfiguration) SetDefaults() {}

var (
	kvItemRE    = newLazyRegexp(`^\s*(\w+)=(.*)$`)
	hostRE      = newLazyRegexp(`^[a-zA-Z0-9:._+-]{1,64}$`)
	rateLimitRE = newLazyRegexp(`^[1-9]\d{0,3}/(?:second|minute|hour|day)$`)
	durationT   = reflect.TypeOf(Duration{})
	portT       = reflect.TypeOf(Port{})
)

// Validate checks every set field against its tag, its type (durations,
// ports) and the rules that tie fields together.
func (f *FelixConfiguration) Validate() ErrorList {
	var errs ErrorList
	p := Path("spec")
	s := &f.Spec
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		validateTagged(&errs, p.Child(name), v.Field(i), t.Field(i).Tag.Get("v"))
	}
	if r := s.KubeNodePortRanges; r != nil {
		if len(*r) > 7 {
			errs.Add(p.Child("kubeNodePortRanges"), "has %d ranges, at most 7 are allowed", len(*r))
		}
		for i, port := range *r {
			if port.PortName != "" {
				errs.Invalid(p.Child("kubeNodePortRanges").Index(i), port.PortName, "is a named port; only numbers and ranges are allowed here")
			}
		}
	}
	for _, fp := range []struct {
		name  string
		ports *[]ProtoPort
	}{{"failsafeInboundHostPorts", s.FailsafeInboundHostPorts}, {"failsafeOutboundHostPorts", s.FailsafeOutboundHostPorts}} {
		if fp.ports == nil {
			continue
		}
		for i, pp := range *fp.ports {
			ip := p.Child(fp.name).Index(i)
			checkEnum(&errs, ip.Child("protocol"), pp.Protocol, "TCP", "UDP", "SCTP")
			if pp.Net != "" {
				checkCIDR(&errs, ip.Child("net"), pp.Net)
			}
		}
	}
	checkDataplaneFields(&errs, p, s)
	if s.RouteTableRange != nil {
		r := s.RouteTableRange
		if r.Min < 1 || r.Max < r.Min || r.Max > 250 {
			errs.Invalid(p.Child("routeTableRange"), fmt.Sprintf("%d-%d", r.Min, r.Max), "is not a valid range of route tables (within 1-250, min at most max)")
		}
		if s.RouteTableRanges != nil {
			errs.Add(p.Child("routeTableRange"), "must not be set together with routeTableRanges")
		}
	}
	if s.RouteTableRanges != nil {
		total := 0
		for i, r := range *s.RouteTableRanges {
			rp := p.Child("routeTableRanges").Index(i)
			switch {
			case r.Min < 1:
				errs.Invalid(rp.Child("min"), r.Min, "must be at least 1")
			case r.Min > r.Max:
				errs.Invalid(rp.Child("max"), r.Max, "must not be less than min")
			case int64(r.Max) > 0xffffffff:
				errs.Invalid(rp.Child("max"), r.Max, "is larger than the largest route table (4294967295)")
			default:
				total += r.Max - r.Min + 1
			}
		}
		if total > 0xffff {
			errs.Add(p.Child("routeTableRanges"), "target %d tables, at most 65535 are allowed", total)
		}
	}
	for i, o := range s.HealthTimeoutOverrides {
		validateHealthTimeoutOverride(&errs, p.Child("healthTimeoutOverrides").Index(i), o)
	}
	if c := s.BPFConntrackTimeouts; c != nil {
		cv := reflect.ValueOf(c).Elem()
		for i := 0; i < cv.NumField(); i++ {
			val := cv.Field(i).Interface().(*string)
			if val == nil || *val == "Auto" {
				continue
			}
			name, _, _ := strings.Cut(cv.Type().Field(i).Tag.Get("json"), ",")
			d := Duration{}
			_ = d.UnmarshalJSON([]byte(strconv.Quote(*val)))
			if d.bad {
				errs.Invalid(p.Child("bpfConntrackTimeouts").Child(name), *val, `is neither "Auto" nor a valid duration`)
			}
		}
	}
	return errs
}

// validateTagged applies the check named by a field's "v" tag, and the
// checks its type implies, to a set field.
func validateTagged(errs *ErrorList, p Path, v reflect.Value, tag string) {
	wasPtr := v.Kind() == reflect.Pointer
	if wasPtr {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Type() {
	case durationT:
		d := v.Interface().(Duration)
		validateDuration(errs, p, &d)
		return
	case portT:
		validatePort(errs, p, v.Interface().(Port))
		return
	}
	if v.Kind() == reflect.Slice && v.Type().Elem() == portT {
		for i := 0; i < v.Len(); i++ {
			validatePort(errs, p.Index(i), v.Index(i).Interface().(Port))
		}
		return
	}
	if tag == "" || (!wasPtr && v.IsZero()) {
		return
	}
	check, arg, _ := strings.Cut(tag, "=")
	switch check {
	case "enum", "enumfold":
		allowed := strings.Split(arg, "|")
		if check == "enum" {
			checkEnum(errs, p, v.String(), allowed...)
		} else {
			checkEnumFold(errs, p, v.String(), allowed...)
		}
	case "loglevel":
		checkEnum(errs, p, v.String(), "Trace", "Debug", "Info", "Warning", "Error", "Fatal")
	case "regexp":
		if _, err := regexp.Compile(v.String()); err != nil {
			errs.Invalid(p, v.String(), "is not a valid regular expression")
		}
	case "kv":
		for _, item := range strings.Split(v.String(), ",") {
			if item != "" && !kvItemRE.MatchString(item) {
				errs.Invalid(p, v.String(), "is not a valid list of key=value pairs separated by commas")
				break
			}
		}
	case "ipv4":
		checkIP(errs, p, v.String(), 4)
	case "ipv6":
		checkIP(errs, p, v.String(), 6)
	case "host":
		if !hostRE.MatchString(v.String()) {
			errs.Invalid(p, v.String(), "is not a valid host (an address or name of at most 64 characters)")
		}
	case "iface":
		checkInterface(errs, p, v.String(), false)
	case "ifacefilter":
		if !ifaceFilterRE.MatchString(v.String()) {
			errs.Invalid(p, v.String(), "is not a valid interface name or pattern")
		}
	case "ifacefilters":
		for i := 0; i < v.Len(); i++ {
			if s := v.Index(i).String(); !ifaceFilterRE.MatchString(s) {
				errs.Invalid(p.Index(i), s, "is not a valid interface name or pattern")
			}
		}
	case "ifacekeys":
		for _, k := range v.MapKeys() {
			if s := k.String(); s != "all" && !interfaceRE.MatchString(s) {
				errs.Invalid(p.Key(s), s, "is not a valid interface name (or \"all\")")
			}
		}
	case "cidrs", "cidrs4":
		for i := 0; i < v.Len(); i++ {
			s := v.Index(i).String()
			if version := checkCIDR(errs, p.Index(i), s); check == "cidrs4" && version == 6 {
				errs.Invalid(p.Index(i), s, "is an IPv6 CIDR; only IPv4 is allowed here")
			}
		}
	case "region":
		if len(v.String()) > 63-len("openstack-region-") {
			errs.Invalid(p, v.String(), "is too long (at most 46 characters)")
		} else if msg := CheckDNS1123Label(v.String()); msg != "" {
			errs.Invalid(p, v.String(), "is not a valid region: "+msg)
		}
	case "ratelimit":
		if !rateLimitRE.MatchString(v.String()) {
			errs.Invalid(p, v.String(), `is not a valid rate ("N/second", "N/minute", "N/hour" or "N/day", N 1-9999)`)
		}
	case "min", "range":
		lo, hi, _ := strings.Cut(arg, ":")
		n := v.Int()
		min, _ := strconv.ParseInt(lo, 10, 64)
		if hi == "" {
			if n < min {
				errs.Invalid(p, n, fmt.Sprintf("must be at least %d", min))
			}
			return
		}
		max, _ := strconv.ParseInt(hi, 10, 64)
		if n < min || n > max {
			errs.Invalid(p, n, fmt.Sprintf("is out of range (%d-%d)", min, max))
		}
	}
}
