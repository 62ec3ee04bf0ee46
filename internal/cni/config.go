package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/netconst"
)

// Defaults of the network configuration.
const (
	// DefaultEtcdEndpoints is used when neither etcd_endpoints nor
	// SERVAL_ETCD_ENDPOINTS says where the datastore is: the embedded
	// member `servalctl datastore serve` starts.
	DefaultEtcdEndpoints = "http://127.0.0.1:2379"
	// EnvEtcdEndpoints names the environment variable read when the
	// configuration has no etcd_endpoints.
	EnvEtcdEndpoints = "SERVAL_ETCD_ENDPOINTS"
	// DefaultDatastoreTimeout bounds each datastore request. A runtime
	// waits for ADD, so a datastore that does not answer must turn into
	// "try again later" quickly rather than hang the pod's creation.
	DefaultDatastoreTimeout = 5 * time.Second
	// DefaultMTU is used when the configuration has no mtu and the host
	// has no default route to take it from.
	DefaultMTU = 1500
)

// NetConf is the network configuration both plugins read from stdin. Keys
// are Calico's where Calico has one, so that a Calico configuration works
// with the type changed. Unknown keys are ignored, as runtimes and other
// tools add their own; a known key with a wrong type or value is rejected
// with error code 7, naming the key.
type NetConf struct {
	CNIVersion   string          `json:"cniVersion"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
	IPAM         IPAMConf        `json:"ipam"`
	DNS          types.DNS       `json:"dns"`

	// EtcdEndpoints is a comma-separated list of etcd URLs.
	EtcdEndpoints  string `json:"etcd_endpoints"`
	EtcdKeyFile    string `json:"etcd_key_file"`
	EtcdCertFile   string `json:"etcd_cert_file"`
	EtcdCACertFile string `json:"etcd_ca_cert_file"`
	EtcdUsername   string `json:"etcd_username"`
	EtcdPassword   string `json:"etcd_password"`
	// DatastoreTimeout is in seconds (Serval's own key).
	DatastoreTimeout float64 `json:"datastore_timeout"`
	// DatastoreType is "etcdv3" or "kubernetes" (Calico's key); when
	// empty, SERVAL_DATASTORE_TYPE, else etcdv3.
	DatastoreType string `json:"datastore_type"`
	// Kubernetes says how to reach the API server with datastore_type
	// kubernetes (Calico's key).
	Kubernetes KubernetesConf `json:"kubernetes"`

	// Nodename is the name of this host's Node (the host name when empty).
	Nodename string `json:"nodename"`
	// MTU of the workload interface; 0 takes the MTU of the interface of
	// the host's default route.
	MTU int `json:"mtu"`
	// MTUFile is where serval-node writes the MTU for workloads, read when
	// mtu is 0 (netconst.MTUFile when empty; Serval's own key).
	MTUFile string `json:"mtu_file"`
	// ExecIPAM makes the serval plugin run serval-ipam as a separate
	// process through CNI delegation even though it could run it in
	// process (Serval's own key; other IPAM types are always delegated).
	ExecIPAM bool `json:"exec_ipam"`
	// IPAMLockFile is the file serval-ipam locks to serialise allocations
	// on this host (DefaultIPAMLockFile when empty).
	IPAMLockFile string `json:"ipam_lock_file"`
	// InterfacePrefix starts the host-side veth names ("cali" when empty).
	InterfacePrefix string `json:"interface_prefix"`

	LogLevel    string `json:"log_level"`
	LogFilePath string `json:"log_file_path"`

	// Labels and Profiles are given to every WorkloadEndpoint of this
	// network.
	Labels   map[string]string `json:"labels"`
	Profiles []string          `json:"profiles"`

	// RuntimeConfig carries what the runtime passes for the capabilities
	// "labels", "profiles" and "ips".
	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`

	// RawPrevResult is the result of ADD, given to CHECK and DEL.
	RawPrevResult map[string]any `json:"prevResult,omitempty"`
}

// KubernetesConf is the "kubernetes" section.
type KubernetesConf struct {
	// Kubeconfig is the API server's kubeconfig file; when empty,
	// $KUBECONFIG, else the in-cluster service account.
	Kubeconfig string `json:"kubeconfig"`
}

// DatastoreTypeOf is the datastore type the configuration names:
// datastore_type, else SERVAL_DATASTORE_TYPE, else etcdv3.
func (c *NetConf) DatastoreTypeOf() (string, error) {
	t := c.DatastoreType
	if t == "" {
		t = os.Getenv(datastore.EnvType)
	}
	return datastore.ParseType(t)
}

// IPAMConf is the "ipam" section.
type IPAMConf struct {
	Type string `json:"type"`
	// IPv4Pools and IPv6Pools restrict allocation to these pools, by name
	// or CIDR.
	IPv4Pools []string `json:"ipv4_pools"`
	IPv6Pools []string `json:"ipv6_pools"`
	// AssignIPv4 (default true) and AssignIPv6 (default false) say which
	// families to allocate. Calico writes them as strings ("true"); both
	// strings and booleans are accepted.
	AssignIPv4 *Bool `json:"assign_ipv4"`
	AssignIPv6 *Bool `json:"assign_ipv6"`
}

// RuntimeConfig is the runtimeConfig section a runtime fills in.
type RuntimeConfig struct {
	Labels   map[string]string `json:"labels"`
	Profiles []string          `json:"profiles"`
	// IPs are specific addresses requested for the workload (the CNI
	// "ips" capability), as addresses or CIDRs.
	IPs []string `json:"ips"`
}

// Bool is a boolean that may be written as a JSON boolean or as the
// strings "true" and "false" (Calico's form).
type Bool bool

// UnmarshalJSON accepts true, false, "true" and "false".
func (b *Bool) UnmarshalJSON(data []byte) error {
	s := string(bytes.TrimSpace(data))
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%s is not a boolean (true or false)", data)
	}
	*b = Bool(v)
	return nil
}

// ConfigError is an invalid network configuration: CNI error 7, naming the
// key.
type ConfigError struct {
	Field string // "ipam.ipv4_pools[1]"
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "invalid network configuration: " + e.Msg
	}
	return "invalid network configuration: " + e.Field + ": " + e.Msg
}

func confErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// LoadNetConf decodes and checks a network configuration. Every error is
// a *ConfigError.
func LoadNetConf(data []byte) (*NetConf, error) {
	c := &NetConf{}
	// encoding/json does not say which key a custom decoder rejected, so
	// the booleans are checked first, by name.
	var pre struct {
		IPAM struct {
			AssignIPv4 json.RawMessage `json:"assign_ipv4"`
			AssignIPv6 json.RawMessage `json:"assign_ipv6"`
		} `json:"ipam"`
	}
	if json.Unmarshal(data, &pre) == nil {
		for _, f := range []struct {
			key string
			raw json.RawMessage
		}{{"ipam.assign_ipv4", pre.IPAM.AssignIPv4}, {"ipam.assign_ipv6", pre.IPAM.AssignIPv6}} {
			var b Bool
			if f.raw != nil {
				if err := b.UnmarshalJSON(f.raw); err != nil {
					return nil, confErr(f.key, "%v", err)
				}
			}
		}
	}
	if err := json.Unmarshal(data, c); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return nil, confErr(jsonFieldName(te.Field), "%s is not %s", te.Value, jsonTypeName(te.Type.String()))
		case errors.As(err, &se):
			return nil, confErr("", "not valid JSON at offset %d: %v", se.Offset, err)
		default:
			// Errors of UnmarshalJSON methods (Bool) do not carry the field;
			// encoding/json prefixes them with the Go path.
			return nil, confErr("", "%v", err)
		}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// jsonFieldName turns encoding/json's Go-ish field path (IPAM.ipv4_pools)
// into the key path the user wrote.
func jsonFieldName(f string) string {
	parts := strings.Split(f, ".")
	for i, p := range parts {
		switch p {
		case "IPAM":
			parts[i] = "ipam"
		case "Kubernetes":
			parts[i] = "kubernetes"
		}
	}
	return strings.Join(parts, ".")
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case goType == "bool":
		return "a boolean"
	}
	return "of the right type (" + goType + ")"
}

func (c *NetConf) check() error {
	if c.Name == "" {
		return confErr("name", "is required")
	}
	if c.CNIVersion == "" {
		return confErr("cniVersion", "is required")
	}
	if _, _, _, err := version.ParseVersion(c.CNIVersion); err != nil {
		return confErr("cniVersion", "%q is not a version: %v", c.CNIVersion, err)
	}
	if c.MTU < 0 || (c.MTU != 0 && c.MTU < 68) || c.MTU > 65535 {
		return confErr("mtu", "%d is not a valid MTU (68-65535, or 0 to detect it)", c.MTU)
	}
	if c.DatastoreTimeout < 0 {
		return confErr("datastore_timeout", "%v is negative", c.DatastoreTimeout)
	}
	if _, err := c.DatastoreTypeOf(); err != nil {
		return confErr("datastore_type", "%v (read from $%s when the key is empty)", err, datastore.EnvType)
	}
	if c.Nodename != "" {
		if msg := api.CheckDNS1123Subdomain(c.Nodename); msg != "" {
			return confErr("nodename", "%q is not a valid node name: %s", c.Nodename, msg)
		}
	}
	if p := c.InterfacePrefix; p != "" {
		if len(p) > 4 || strings.ContainsAny(p, "/: \t") {
			return confErr("interface_prefix", "%q must be 1-4 characters without '/', ':' or spaces (11 hex digits follow it in a 15-character name)", p)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return confErr("log_level", "%v", err)
	}
	if err := checkLabels("labels", c.Labels); err != nil {
		return err
	}
	if err := checkProfiles("profiles", c.Profiles); err != nil {
		return err
	}
	if err := checkLabels("runtimeConfig.labels", c.RuntimeConfig.Labels); err != nil {
		return err
	}
	if err := checkProfiles("runtimeConfig.profiles", c.RuntimeConfig.Profiles); err != nil {
		return err
	}
	for i, s := range c.RuntimeConfig.IPs {
		if _, err := parseAddr(s); err != nil {
			return confErr(fmt.Sprintf("runtimeConfig.ips[%d]", i), "%q is not an IP address or CIDR", s)
		}
	}
	for i, ep := range c.etcdEndpointList() {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return confErr("etcd_endpoints", "endpoint %d, %q, is not an http:// or https:// URL", i+1, ep)
		}
	}
	for _, f := range []struct{ key, path string }{
		{"etcd_key_file", c.EtcdKeyFile}, {"etcd_cert_file", c.EtcdCertFile}, {"etcd_ca_cert_file", c.EtcdCACertFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return confErr(f.key, "cannot read %q: %v", f.path, err)
		}
	}
	if (c.EtcdCertFile == "") != (c.EtcdKeyFile == "") {
		return confErr("etcd_cert_file", "etcd_cert_file and etcd_key_file must be given together")
	}
	return c.IPAM.check()
}

func (i *IPAMConf) check() error {
	if i.Type == "" {
		return confErr("ipam.type", "is required (serval-ipam, host-local, ...)")
	}
	if !i.WantIPv4() && !i.WantIPv6() {
		return confErr("ipam.assign_ipv4", "assign_ipv4 and assign_ipv6 are both false: there is nothing to assign")
	}
	for _, l := range []struct {
		key   string
		pools []string
		v6    bool
	}{{"ipam.ipv4_pools", i.IPv4Pools, false}, {"ipam.ipv6_pools", i.IPv6Pools, true}} {
		for n, p := range l.pools {
			field := fmt.Sprintf("%s[%d]", l.key, n)
			if p == "" {
				return confErr(field, "is empty")
			}
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				if msg := api.CheckDNS1123Subdomain(p); msg != "" {
					return confErr(field, "%q is neither a CIDR nor a pool name", p)
				}
				continue
			}
			if pfx.Addr().Is6() != l.v6 {
				return confErr(field, "%q is not an %s CIDR", p, map[bool]string{false: "IPv4", true: "IPv6"}[l.v6])
			}
		}
	}
	return nil
}

// WantIPv4 says whether to allocate an IPv4 address (default yes).
func (i *IPAMConf) WantIPv4() bool { return i.AssignIPv4 == nil || bool(*i.AssignIPv4) }

// WantIPv6 says whether to allocate an IPv6 address (default no).
func (i *IPAMConf) WantIPv6() bool { return i.AssignIPv6 != nil && bool(*i.AssignIPv6) }

func checkLabels(field string, labels map[string]string) error {
	var errs api.ErrorList
	api.ValidateLabels(&errs, api.Path(field), labels)
	if len(errs) > 0 {
		return &ConfigError{Msg: errs[0].Error()}
	}
	return nil
}

func checkProfiles(field string, profiles []string) error {
	for i, p := range profiles {
		if msg := api.CheckDNS1123Subdomain(p); msg != "" {
			return confErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid profile name: %s", p, msg)
		}
	}
	return nil
}

// parseAddr accepts an address or a CIDR and returns the address.
func parseAddr(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

func (c *NetConf) etcdEndpointList() []string {
	s := c.EtcdEndpoints
	if s == "" {
		s = os.Getenv(EnvEtcdEndpoints)
	}
	if s == "" {
		s = DefaultEtcdEndpoints
	}
	var out []string
	for _, ep := range strings.Split(s, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			out = append(out, ep)
		}
	}
	return out
}

// EtcdConfig is how to reach the datastore: etcd_endpoints, else
// SERVAL_ETCD_ENDPOINTS, else DefaultEtcdEndpoints, with the TLS files.
func (c *NetConf) EtcdConfig() datastore.EtcdConfig {
	timeout := DefaultDatastoreTimeout
	if c.DatastoreTimeout > 0 {
		timeout = time.Duration(c.DatastoreTimeout * float64(time.Second))
	}
	return datastore.EtcdConfig{
		Endpoints:      c.etcdEndpointList(),
		CertFile:       c.EtcdCertFile,
		KeyFile:        c.EtcdKeyFile,
		CAFile:         c.EtcdCACertFile,
		Username:       c.EtcdUsername,
		Password:       c.EtcdPassword,
		DialTimeout:    timeout,
		RequestTimeout: timeout,
	}
}

// NodeName is nodename, else the host name (lower-cased, as node names
// are DNS names).
func (c *NetConf) NodeName() (string, error) {
	if c.Nodename != "" {
		return c.Nodename, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("reading the host name (set nodename in the network configuration): %w", err)
	}
	return strings.ToLower(h), nil
}

// VethPrefix is interface_prefix or the default "cali".
func (c *NetConf) VethPrefix() string {
	if c.InterfacePrefix != "" {
		return c.InterfacePrefix
	}
	return netconst.DefaultInterfacePrefix
}
