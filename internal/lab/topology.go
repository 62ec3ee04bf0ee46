package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Topology is a lab as its YAML file describes it. The zero value is not
// usable: build one with ParseTopology or LoadTopology, which validate it and
// fill in defaults.
type Topology struct {
	// Name of the lab; every namespace, process and file it creates carries
	// it (netns "svl-<name>-<member>"). Defaults to the file's base name.
	Name string `json:"name,omitempty"`
	// Fabric is how the hosts are joined: "bridge" (default), a layer-2
	// segment in a namespace of its own that every host, the router and
	// the datastore sit on; or "wire", exactly two hosts and no router
	// cabled back to back by one veth pair, nothing between them (the
	// dataplane benchmark's topology). A wire lab reaches its datastore
	// over a management link per host, off the wire.
	Fabric string `json:"fabric,omitempty"`
	// MTU of the fabric (every member's eth0 and the bridge's ports); 0
	// leaves the kernel's 1500.
	MTU       int        `json:"mtu,omitempty"`
	Datastore Datastore  `json:"datastore"`
	Router    *Router    `json:"router,omitempty"`
	Hosts     []Host     `json:"hosts"`
	Workloads []Workload `json:"workloads,omitempty"`
	// ExternalHosts are plain machines ("non-virtual devices") on a segment
	// of their own behind the router: no agent, a default route via the
	// router, so they reach workloads only through what BGP taught it.
	ExternalHosts []ExternalHost `json:"externalHosts,omitempty"`
	// Manifests are servalctl resource files applied at bring-up, paths
	// relative to the topology file (made absolute by LoadTopology).
	Manifests []string `json:"manifests,omitempty"`
	// Cluster, the `kubernetes:` section, makes the lab a whole
	// Kubernetes cluster, every host a node (see cluster.go).
	Cluster *Cluster `json:"kubernetes,omitempty"`
}

// Datastore says where the lab's etcd runs.
type Datastore struct {
	// Kind is "embedded" (one etcd member, default), "etcd-cluster", or
	// "kubernetes": a kube-apiserver (on one embedded etcd member) is the
	// datastore, every workload a Pod (see kube.go).
	Kind string `json:"kind,omitempty"`
	// Members of an etcd-cluster (3 when unset).
	Members int `json:"members,omitempty"`
	// Address of the datastore namespace on the fabric (ADDR/PREFIX);
	// defaults to the highest free address of the fabric subnet.
	Address string `json:"address,omitempty"`
	// MemberAddresses are the addresses (ADDR/PREFIX) of an etcd-cluster's
	// members, all in the datastore namespace; the first is Address. When
	// unset, validation takes the free addresses just below Address.
	MemberAddresses []string `json:"memberAddresses,omitempty"`
}

// Router is the optional top-of-rack router every host peers with.
type Router struct {
	Name string `json:"name,omitempty"` // default "router"
	// Kind is bird or frr (a BGP router), or static: a router that only
	// forwards between its subnets and learns no workload routes at all
	// (the fabric an overlay is for).
	Kind     string `json:"kind"`
	ASNumber uint32 `json:"asNumber"`
	Address  string `json:"address"` // ADDR/PREFIX on the fabric
	// DefaultRoute gives every host a static default route via the router
	// (nil: true), as servers have towards their top-of-rack. Set it false
	// when the router should advertise the default route by BGP instead.
	DefaultRoute *bool `json:"defaultRoute,omitempty"`
	// Subnets are the router's addresses (ADDR/PREFIX) on further host
	// subnets, all on the same segment as the fabric: hosts may have
	// their address on any of them, and their default route goes via the
	// router's address on their own subnet.
	Subnets []string `json:"subnets,omitempty"`
	// Address6 and Subnets6 are the router's IPv6 addresses on the
	// fabric and on the further subnets (ADDR/PREFIX), for hosts with an
	// address6.
	Address6 string   `json:"address6,omitempty"`
	Subnets6 []string `json:"subnets6,omitempty"`
	// ExternalAddress is the router's address on the external hosts'
	// segment (ADDR/PREFIX); defaults to the first address of their subnet.
	ExternalAddress string `json:"externalAddress,omitempty"`
}

// ExternalHost is a machine behind the router that runs no Serval.
type ExternalHost struct {
	Name    string `json:"name"`
	Address string `json:"address"` // ADDR/PREFIX on the external segment
}

// HostsDefaultViaRouter says whether hosts get a static default route via
// the router. When they do not, the router advertises 0.0.0.0/0 by BGP.
func (r *Router) HostsDefaultViaRouter() bool { return r.DefaultRoute == nil || *r.DefaultRoute }

// Host is one server: a namespace on the fabric that runs serval-node.
type Host struct {
	Name     string `json:"name"`
	Address  string `json:"address"`            // ADDR/PREFIX on the fabric
	ASNumber uint32 `json:"asNumber,omitempty"` // 0: the BGPConfiguration's AS
	// Address6 is the host's IPv6 address (ADDR/PREFIX), optional: with
	// it the host runs dual-stack and its workloads get IPv6 too.
	Address6 string `json:"address6,omitempty"`
}

// Workload is one container: a namespace wired to its host by serval-cni.
type Workload struct {
	Name      string            `json:"name"`
	Host      string            `json:"host"`
	Namespace string            `json:"namespace,omitempty"`
	Address   string            `json:"address,omitempty"` // static IP; empty: from IPAM
	Labels    map[string]string `json:"labels,omitempty"`
	Profiles  []string          `json:"profiles,omitempty"`
}

// Reserved member names: the lab's own namespaces use them.
var reservedNames = map[string]bool{"fabric": true, "datastore": true}

var (
	labNameRE    = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	memberNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$`)
	// dnsLabelRE is a Kubernetes name of one DNS label (a Node's, a
	// Namespace's).
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// LoadTopology reads and validates a topology file. Manifest paths become
// absolute (relative to the file) and a missing name becomes the file's base
// name.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	t, err := ParseTopology(path, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for i, m := range t.Manifests {
		if !filepath.IsAbs(m) {
			t.Manifests[i] = filepath.Join(dir, m)
		}
		if _, err := os.Stat(t.Manifests[i]); err != nil {
			return nil, fmt.Errorf("%s: manifests[%d]: %w", path, i, err)
		}
	}
	return t, nil
}

// ParseTopology decodes data strictly (unknown fields are errors) and
// validates it. Every error names source and the field path, and all
// problems are reported together. It never panics, whatever data holds.
func ParseTopology(source string, data []byte) (*Topology, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		// One line per error, each naming the file.
		return nil, fmt.Errorf("%s: not valid YAML: %s", source, strings.Join(strings.Fields(err.Error()), " "))
	}
	var raw any
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", source, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%s: empty topology: at least 'hosts' is needed", source)
	}
	var errs []string
	checkShape(raw, &errs)
	if len(errs) == 0 {
		// The shape check above catches unknown fields with their path;
		// DisallowUnknownFields stays as a belt and braces.
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		var t Topology
		if err := dec.Decode(&t); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, fmt.Errorf("%s: %s: expected %s, got %s", source, te.Field, te.Type, te.Value)
			}
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if name := strings.TrimSuffix(filepath.Base(source), filepath.Ext(source)); t.Name == "" && source != "" && source != "-" {
			t.Name = name
		}
		errs = append(errs, t.validate()...)
		if len(errs) == 0 {
			return &t, nil
		}
	}
	for i := range errs {
		errs[i] = source + ": " + errs[i]
	}
	return nil, errors.New(strings.Join(errs, "\n"))
}

// fields lists the keys each object of the file may have; checkShape walks
// the decoded document so an unknown or misspelt key is reported with its
// path (hosts[1].adress), which encoding/json cannot do.
var fields = map[string][]string{
	"":              {"name", "fabric", "mtu", "datastore", "router", "hosts", "workloads", "externalHosts", "manifests", "kubernetes"},
	"datastore":     {"kind", "members", "address", "memberAddresses"},
	"router":        {"name", "kind", "asNumber", "address", "subnets", "address6", "subnets6", "defaultRoute", "externalAddress"},
	"externalHosts": {"name", "address"},
	"kubernetes":    {"kubeProxy"},
	"hosts":         {"name", "address", "asNumber", "address6"},
	"workloads":     {"name", "host", "namespace", "address", "labels", "profiles"},
}

func checkShape(raw any, errs *[]string) {
	top, ok := raw.(map[string]any)
	if !ok {
		*errs = append(*errs, "the topology must be a mapping with at least 'hosts'")
		return
	}
	checkKeys("", top, fields[""], errs)
	for _, key := range []string{"datastore", "router", "kubernetes"} {
		if v, ok := top[key]; ok && v != nil {
			m, ok := v.(map[string]any)
			if !ok {
				*errs = append(*errs, fmt.Sprintf("%s: expected a mapping", key))
				continue
			}
			checkKeys(key, m, fields[key], errs)
		}
	}
	for _, key := range []string{"hosts", "workloads", "externalHosts"} {
		v, ok := top[key]
		if !ok || v == nil {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			*errs = append(*errs, fmt.Sprintf("%s: expected a list", key))
			continue
		}
		for i, item := range list {
			path := fmt.Sprintf("%s[%d]", key, i)
			m, ok := item.(map[string]any)
			if !ok {
				*errs = append(*errs, fmt.Sprintf("%s: expected a mapping", path))
				continue
			}
			checkKeys(path, m, fields[key], errs)
		}
	}
}

func checkKeys(path string, m map[string]any, allowed []string, errs *[]string) {
	var unknown []string
	for k := range m {
		if !contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		p := k
		if path != "" {
			p = path + "." + k
		}
		*errs = append(*errs, fmt.Sprintf("%s: unknown field (known: %s)", p, strings.Join(allowed, ", ")))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validate checks values and fills defaults; it returns every problem.
func (t *Topology) validate() []string {
	var errs []string
	bad := func(path, format string, a ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, a...))
	}
	if !labNameRE.MatchString(t.Name) {
		bad("name", "%q is not a valid lab name (1-16 lower-case letters and digits; set 'name:' when the file name is not one)", t.Name)
	}

	names := map[string]string{} // lower-case name -> path, for uniqueness
	useName := func(path, name string) {
		switch {
		case name == "":
			bad(path, "required")
		case !memberNameRE.MatchString(name):
			bad(path, "%q is not a valid name (letters, digits, '-' and '_', at most 31, starting with a letter or digit)", name)
		case reservedNames[strings.ToLower(name)]:
			bad(path, "%q is reserved for the lab's own namespace", name)
		case names[strings.ToLower(name)] != "":
			bad(path, "%q is already used by %s (names of hosts, workloads and the router must be unique)", name, names[strings.ToLower(name)])
		default:
			names[strings.ToLower(name)] = path
		}
	}

	// The fabric: one segment every host (and the router, and the
	// datastore) sits on, so its subnet comes from the first host; the
	// router's subnets add further subnets on the same segment.
	var fabric netip.Prefix
	var extraSubnets []netip.Prefix
	if t.Router != nil {
		for i, a := range t.Router.Subnets {
			p, err := netip.ParsePrefix(a)
			if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
				bad(fmt.Sprintf("router.subnets[%d]", i), "%q is not an IPv4 address with a prefix length of 30 or shorter", a)
				continue
			}
			extraSubnets = append(extraSubnets, p.Masked())
		}
	}
	if t.MTU != 0 && (t.MTU < 1280 || t.MTU > 65535) {
		bad("mtu", "%d is not a fabric MTU (1280-65535, or 0 for 1500)", t.MTU)
	}
	used := map[netip.Addr]string{}
	useAddr := func(path, s string) netip.Prefix {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			bad(path, "%q is not an IPv4 address with a prefix length (like 172.17.8.101/24)", s)
			return netip.Prefix{}
		}
		if p.Bits() > 30 {
			bad(path, "%q: the prefix length must be 30 or shorter so the fabric holds more than one member", s)
			return netip.Prefix{}
		}
		if p.Addr() == p.Masked().Addr() || p.Addr() == lastAddr(p) {
			bad(path, "%q is the subnet's network or broadcast address", s)
			return netip.Prefix{}
		}
		if fabric.IsValid() && fabric != p.Masked() && !slices.Contains(extraSubnets, p.Masked()) {
			bad(path, "%q is not on the fabric subnet %s (every host, the router and the datastore share one segment)", s, fabric)
			return netip.Prefix{}
		}
		if other, ok := used[p.Addr()]; ok {
			bad(path, "%s is already used by %s", p.Addr(), other)
			return netip.Prefix{}
		}
		used[p.Addr()] = path
		if !fabric.IsValid() {
			fabric = p.Masked()
		}
		return p
	}

	if len(t.Hosts) == 0 {
		bad("hosts", "at least one host is required")
	}
	for i := range t.Hosts {
		h := &t.Hosts[i]
		path := fmt.Sprintf("hosts[%d]", i)
		useName(path+".name", h.Name)
		if h.Address == "" {
			bad(path+".address", "required (like 172.17.8.101/24)")
		} else {
			useAddr(path+".address", h.Address)
		}
		if h.Address6 != "" {
			if p, err := netip.ParsePrefix(h.Address6); err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
				bad(path+".address6", "%q is not an IPv6 address with a prefix length (like fd00:8::101/64)", h.Address6)
			}
		}
	}

	if r := t.Router; r != nil {
		if r.Name == "" {
			r.Name = "router"
		}
		useName("router.name", r.Name)
		switch r.Kind {
		case "bird", "frr", RouterStatic:
		case "":
			bad("router.kind", "required (bird, frr or static)")
		default:
			bad("router.kind", "%q is not a router kind (bird, frr or static)", r.Kind)
		}
		if r.ASNumber == 0 && r.Kind != RouterStatic {
			bad("router.asNumber", "required (1-4294967295)")
		}
		if r.Address == "" {
			bad("router.address", "required (like 172.17.8.1/24)")
		} else {
			useAddr("router.address", r.Address)
		}
		for i, a := range append([]string{r.Address6}, r.Subnets6...) {
			if a == "" && i == 0 {
				continue
			}
			if p, err := netip.ParsePrefix(a); err != nil || !p.Addr().Is6() {
				bad("router.address6/subnets6", "%q is not an IPv6 address with a prefix length", a)
			}
		}
		if len(r.Subnets6) > 0 && r.Address6 == "" {
			bad("router.subnets6", "needs router.address6")
		}
		for i, a := range r.Subnets {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() && p.Bits() <= 30 {
				useAddr(fmt.Sprintf("router.subnets[%d]", i), a)
			}
		}
		if r.Kind == RouterStatic && len(t.ExternalHosts) > 0 {
			bad("externalHosts", "need a BGP router (a static router teaches them no workload routes)")
		}
	}

	t.validateExternal(bad, useName, used)
	t.validateFabric(bad)

	t.validateCluster(bad)
	d := &t.Datastore
	switch d.Kind {
	case "", "embedded":
		d.Kind = "embedded"
		if d.Members != 0 && d.Members != 1 {
			bad("datastore.members", "an embedded datastore has one member")
		}
	case "etcd-cluster":
		if d.Members == 0 {
			d.Members = 3
		}
		if d.Members < 1 || d.Members > 7 {
			bad("datastore.members", "%d: an etcd cluster here has 1 to 7 members", d.Members)
		}
	case DatastoreKubernetes:
		if d.Members != 0 && d.Members != 1 {
			bad("datastore.members", "a kubernetes datastore has one etcd member")
		}
	default:
		bad("datastore.kind", "%q is not a datastore kind (embedded, etcd-cluster or kubernetes)", d.Kind)
	}
	if d.Address != "" {
		useAddr("datastore.address", d.Address)
	} else if fabric.IsValid() {
		// The highest free address, out of the way of hand-picked ones.
		for a := lastAddr(fabric).Prev(); fabric.Contains(a) && a != fabric.Addr(); a = a.Prev() {
			if _, taken := used[a]; !taken {
				d.Address = netip.PrefixFrom(a, fabric.Bits()).String()
				used[a] = "datastore.address"
				break
			}
		}
	}
	if d.Kind == "etcd-cluster" && d.Address != "" && fabric.IsValid() {
		errs = append(errs, clusterAddresses(d, fabric, used, useAddr)...)
	}

	hosts := map[string]bool{}
	for i, h := range t.Hosts {
		hosts[h.Name] = true
		if d.Kind == DatastoreKubernetes && !dnsLabelRE.MatchString(h.Name) {
			bad(fmt.Sprintf("hosts[%d].name", i), "%q names a Kubernetes Node with a kubernetes datastore: lower case letters, digits and '-' only, starting and ending with a letter or digit", h.Name)
		}
	}
	static := map[netip.Addr]string{}
	for i := range t.Workloads {
		w := &t.Workloads[i]
		path := fmt.Sprintf("workloads[%d]", i)
		useName(path+".name", w.Name)
		switch {
		case w.Host == "":
			bad(path+".host", "required (the name of one of the hosts)")
		case !hosts[w.Host]:
			bad(path+".host", "%q is not one of the hosts", w.Host)
		}
		if w.Namespace == "" {
			w.Namespace = "default"
		}
		if d.Kind == DatastoreKubernetes && !dnsLabelRE.MatchString(w.Namespace) {
			bad(path+".namespace", "%q is not a Kubernetes namespace name (lower case letters, digits and '-')", w.Namespace)
		}
		if w.Address != "" {
			a, err := netip.ParseAddr(w.Address)
			if err != nil || !a.Is4() {
				bad(path+".address", "%q is not an IPv4 address (no prefix length: workloads get a /32)", w.Address)
			} else if other, ok := static[a]; ok {
				bad(path+".address", "%s is already used by %s", a, other)
			} else {
				static[a] = path
			}
		}
		if d.Kind == DatastoreKubernetes && len(w.Profiles) > 0 {
			bad(path+".profiles", "a pod's profiles are those of its namespace and service account (kns.<namespace>, ksa.<namespace>.<name>): a kubernetes datastore takes none from the topology")
		}
		for j, p := range w.Profiles {
			if p == "" {
				bad(fmt.Sprintf("%s.profiles[%d]", path, j), "empty profile name")
			}
		}
	}
	for i, m := range t.Manifests {
		if m == "" {
			bad(fmt.Sprintf("manifests[%d]", i), "empty path")
		}
	}
	return errs
}

// validateExternal checks the external hosts: one subnet of their own, off
// the fabric, behind a router that gets an address on it.
func (t *Topology) validateExternal(bad func(path, format string, a ...any), useName func(path, name string), used map[netip.Addr]string) {
	if len(t.ExternalHosts) == 0 {
		if t.Router != nil && t.Router.ExternalAddress != "" {
			bad("router.externalAddress", "set, but there are no externalHosts")
		}
		return
	}
	if t.Router == nil {
		bad("externalHosts", "need a router (they sit on a segment behind it)")
		return
	}
	var fabric netip.Prefix
	if len(t.Hosts) > 0 {
		if p, err := netip.ParsePrefix(t.Hosts[0].Address); err == nil {
			fabric = p.Masked()
		}
	}
	var ext netip.Prefix
	use := func(path, s string) {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil || !p.Addr().Is4() || p.Bits() > 30:
			bad(path, "%q is not an IPv4 address with a prefix length of 30 or shorter (like 10.200.0.10/24)", s)
		case p.Addr() == p.Masked().Addr() || p.Addr() == lastAddr(p):
			bad(path, "%q is the subnet's network or broadcast address", s)
		case fabric.IsValid() && fabric.Overlaps(p.Masked()):
			bad(path, "%q overlaps the fabric %s (external hosts sit on a segment of their own)", s, fabric)
		case ext.IsValid() && ext != p.Masked():
			bad(path, "%q is not on the external subnet %s (external hosts share one segment)", s, ext)
		case used[p.Addr()] != "":
			bad(path, "%s is already used by %s", p.Addr(), used[p.Addr()])
		default:
			used[p.Addr()] = path
			ext = p.Masked()
		}
	}
	for i := range t.ExternalHosts {
		e := &t.ExternalHosts[i]
		path := fmt.Sprintf("externalHosts[%d]", i)
		useName(path+".name", e.Name)
		if e.Address == "" {
			bad(path+".address", "required (like 10.200.0.10/24)")
		} else {
			use(path+".address", e.Address)
		}
	}
	r := t.Router
	if r.ExternalAddress != "" {
		use("router.externalAddress", r.ExternalAddress)
	} else if ext.IsValid() {
		for a := ext.Addr().Next(); ext.Contains(a) && a != lastAddr(ext); a = a.Next() {
			if used[a] == "" {
				r.ExternalAddress = netip.PrefixFrom(a, ext.Bits()).String()
				used[a] = "router.externalAddress"
				break
			}
		}
	}
}

// Fabric kinds.
const (
	FabricBridge = "bridge"
	FabricWire   = "wire"
)

// Wire says whether the hosts are joined by one veth pair, no bridge.
func (t *Topology) Wire() bool { return t.Fabric == FabricWire }

// validateFabric checks the fabric kind and what a wire allows: a veth
// has two ends, so two hosts, and nothing else can be on it.
func (t *Topology) validateFabric(bad func(path, format string, a ...any)) {
	switch t.Fabric {
	case "", FabricBridge:
		t.Fabric = FabricBridge
		return
	case FabricWire:
	default:
		bad("fabric", "%q is not a fabric kind (bridge or wire)", t.Fabric)
		return
	}
	if len(t.Hosts) != 2 {
		bad("fabric", "a wire joins exactly two hosts, not %d (use fabric: bridge for more)", len(t.Hosts))
	}
	if t.Router != nil {
		bad("router", "a wire lab has no router: the wire's two ends are the hosts (use fabric: bridge for a router)")
	}
}

// ExternalPrefix is the external hosts' subnet (invalid without any).
func (t *Topology) ExternalPrefix() netip.Prefix {
	if len(t.ExternalHosts) == 0 {
		return netip.Prefix{}
	}
	p, _ := netip.ParsePrefix(t.ExternalHosts[0].Address)
	return p.Masked()
}

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := 0; i < 4; i++ {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 1 << (7 - b)
			}
		}
	}
	return netip.AddrFrom4(a)
}

// FabricPrefix is the subnet every host shares (on a wire lab, the wire's).
func (t *Topology) FabricPrefix() netip.Prefix {
	p, _ := netip.ParsePrefix(t.Hosts[0].Address)
	return p.Masked()
}

// Host returns the host called name, or nil.
func (t *Topology) Host(name string) *Host {
	for i := range t.Hosts {
		if t.Hosts[i].Name == name {
			return &t.Hosts[i]
		}
	}
	return nil
}

// Workload returns the workload called name, or nil.
func (t *Topology) Workload(name string) *Workload {
	for i := range t.Workloads {
		if t.Workloads[i].Name == name {
			return &t.Workloads[i]
		}
	}
	return nil
}
