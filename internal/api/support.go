package api

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// What Serval accepts it enforces. Calico's API has fields Serval cannot
// honour (yet); a manifest setting one would otherwise apply and then mean
// something else — an Allow rule with an HTTP match allowing all of that
// traffic, an IPIP pool routed natively — with no word to the user. Each
// such field is listed here, once, with why it is refused; Validate adds a
// refusal for every occurrence set to a value Serval cannot honour, so
// servalctl (apply, create, replace, validate), the datastore's writes and
// the agent's admission of what it reads all refuse it alike.
//
// A branch that implements a field deletes its entry here (and changes its
// line in docs/COMPATIBILITY.md from refused to enforced).

// Refusal is one field Serval refuses when it is set to a value it cannot
// honour.
type Refusal struct {
	Kind  string // "IPPool"
	Field string // as docs/COMPATIBILITY.md writes it: "spec.ingress[].http"
	Why   string // a phrase: "Serval has no application-layer proxy"
	// find reports each occurrence of the field in r set to a value that
	// cannot be honoured (the path of that occurrence and its value, or
	// nil when the value would say nothing more).
	find func(r Resource, report func(p Path, value any))
}

// Refusals lists every refused field, for the compatibility document's
// test.
func Refusals() []Refusal { return refusals }

// refuseUnsupported adds a problem for every refused field r sets.
func refuseUnsupported(errs *ErrorList, r Resource) {
	kind := r.GetTypeMeta().Kind
	if t, ok := kindTypes()[kind]; !ok || t != reflect.TypeOf(r) {
		return // the kind's own checks report a mismatch
	}
	for _, f := range refusals {
		if f.Kind != kind {
			continue
		}
		f.find(r, func(p Path, value any) {
			if value == nil {
				errs.Add(p, "is not supported by Serval: %s", f.Why)
				return
			}
			errs.Add(p, "%s is not supported by Serval: %s", quoteValue(value), f.Why)
		})
	}
}

// kindTypes maps each kind to its Go type, made once: the agent validates
// every object it reads, and making an empty one each time to learn its
// type was half of what a WorkloadEndpoint's validation allocated.
var kindTypes = sync.OnceValue(func() map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for k, info := range kinds {
		m[k] = reflect.TypeOf(info.New())
	}
	return m
})

var refusals = func() []Refusal {
	var out []Refusal
	// Rule matches, in each kind that has rules and each direction.
	// Calico itself allows HTTP matches in ingress rules only, and service
	// matches only on the far side (an ingress rule's source, an egress
	// rule's destination); elsewhere they are invalid already.
	for _, kind := range []string{"GlobalNetworkPolicy", "NetworkPolicy", "Profile"} {
		out = append(out, Refusal{
			Kind: kind, Field: "spec.ingress[].http",
			Why: "Serval has no application-layer proxy, so an HTTP match cannot be enforced (an Allow would allow all of that traffic)",
			find: eachRule("ingress", func(p Path, r *Rule, report func(Path, any)) {
				if r.HTTP != nil {
					report(p.Child("http"), nil)
				}
			}),
		})
		for _, f := range []struct{ dir, side string }{{"ingress", "source"}, {"egress", "destination"}} {
			out = append(out, Refusal{
				Kind: kind, Field: "spec." + f.dir + "[]." + f.side + ".services",
				Why: "Kubernetes Service matches need the Service's endpoints, which Serval does not follow; use a selector",
				find: eachRule(f.dir, func(p Path, r *Rule, report func(Path, any)) {
					e := &r.Source
					if f.side == "destination" {
						e = &r.Destination
					}
					if e.Services != nil {
						report(p.Child(f.side).Child("services"), e.Services.Namespace+"/"+e.Services.Name)
					}
				}),
			})
		}
	}
	out = append(out, ipPoolRefusals...)
	out = append(out, bgpRefusals...)
	out = append(out, felixRefusals()...)
	return out
}()

// eachRule returns a find function calling fn for each rule of one
// direction ("ingress" or "egress") of a policy or profile.
func eachRule(dir string, fn func(p Path, r *Rule, report func(Path, any))) func(Resource, func(Path, any)) {
	return func(res Resource, report func(Path, any)) {
		var rules []Rule
		switch x := res.(type) {
		case *GlobalNetworkPolicy:
			rules = pick(dir, x.Spec.Ingress, x.Spec.Egress)
		case *NetworkPolicy:
			rules = pick(dir, x.Spec.Ingress, x.Spec.Egress)
		case *Profile:
			rules = pick(dir, x.Spec.Ingress, x.Spec.Egress)
		}
		p := Path("spec").Child(dir)
		for i := range rules {
			fn(p.Index(i), &rules[i], report)
		}
	}
}

func pick(dir string, ingress, egress []Rule) []Rule {
	if dir == "ingress" {
		return ingress
	}
	return egress
}

var ipPoolRefusals = []Refusal{
	{Kind: "IPPool", Field: "spec.namespaceSelector",
		Why: "Serval's IPAM does not restrict pools by namespace; only empty or all() can be honoured",
		find: func(r Resource, report func(Path, any)) {
			if s := strings.TrimSpace(r.(*IPPool).Spec.NamespaceSelector); s != "" && s != "all()" {
				report("spec.namespaceSelector", s)
			}
		}},
	{Kind: "IPPool", Field: "spec.allowedUses",
		// Workload and Tunnel are enforced: IPAM gives workloads addresses
		// only from Workload pools, and the overlay takes tunnel addresses
		// only from Tunnel pools. Load-balancer addresses Serval never
		// assigns.
		Why: "Serval does not assign load-balancer addresses",
		find: func(r Resource, report func(Path, any)) {
			for i, u := range r.(*IPPool).Spec.AllowedUses {
				if u == AllowedUseLoadBalancer {
					report(Path("spec.allowedUses").Index(i), string(u))
				}
			}
		}},
}

var bgpRefusals = []Refusal{
	{Kind: "BGPConfiguration", Field: "spec.ignoredInterfaces",
		Why: "Serval's BGP speaker does not export interface routes, so there is nothing to ignore by interface",
		find: func(r Resource, report func(Path, any)) {
			for i, s := range r.(*BGPConfiguration).Spec.IgnoredInterfaces {
				report(Path("spec.ignoredInterfaces").Index(i), s)
			}
		}},
	{Kind: "BGPConfiguration", Field: "spec.localWorkloadPeeringIPV4",
		Why: "Serval does not peer with workloads",
		find: func(r Resource, report func(Path, any)) {
			if s := r.(*BGPConfiguration).Spec.LocalWorkloadPeeringIPV4; s != "" {
				report("spec.localWorkloadPeeringIPV4", s)
			}
		}},
	{Kind: "BGPConfiguration", Field: "spec.localWorkloadPeeringIPV6",
		Why: "Serval does not peer with workloads",
		find: func(r Resource, report func(Path, any)) {
			if s := r.(*BGPConfiguration).Spec.LocalWorkloadPeeringIPV6; s != "" {
				report("spec.localWorkloadPeeringIPV6", s)
			}
		}},
	{Kind: "BGPPeer", Field: "spec.localWorkloadSelector",
		Why: "Serval does not peer with workloads",
		find: func(r Resource, report func(Path, any)) {
			if s := r.(*BGPPeer).Spec.LocalWorkloadSelector; s != "" {
				report("spec.localWorkloadSelector", s)
			}
		}},
}

// felixRefusal refuses a FelixConfiguration field (by its JSON name) when it
// is set to anything but one of the values ok lists (as they print with
// fmt: "true", "Never"); with no ok value, when it is set at all.
func felixRefusal(field, why string, ok ...string) Refusal {
	return Refusal{Kind: "FelixConfiguration", Field: "spec." + field, Why: why,
		find: func(r Resource, report func(Path, any)) {
			v, found := felixField(&r.(*FelixConfiguration).Spec, field)
			if !found || isUnset(v) {
				return
			}
			for v.Kind() == reflect.Pointer {
				v = v.Elem()
			}
			s := printValue(v)
			for _, o := range ok {
				if strings.EqualFold(s, o) {
					return
				}
			}
			report(Path("spec").Child(field), s)
		}}
}

func felixField(s *FelixConfigurationSpec, field string) (reflect.Value, bool) {
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == field {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func isUnset(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return v.IsNil()
	}
	return v.IsZero()
}

func printValue(v reflect.Value) string {
	if s, ok := v.Interface().(interface{ String() string }); ok {
		return s.String()
	}
	if v.Kind() == reflect.String {
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

// felixRefusals are the FelixConfiguration fields that change what a Linux
// nftables dataplane does and that Serval does not implement. Fields of
// Calico's other dataplanes (iptables, eBPF, XDP, Windows) and of
// components Serval does not have are not refused: docs/COMPATIBILITY.md
// lists them as not applicable, with why.
func felixRefusals() []Refusal {
	const (
		encap  = "Serval always drops IPIP and VXLAN packets from workloads (they could carry spoofed inner addresses past policy)"
		routes = "Serval programs its routes with its own protocol and priorities"
	)
	return []Refusal{
		felixRefusal("useInternalDataplaneDriver", "Serval has only its own dataplane; an external dataplane driver cannot be used", "true"),
		felixRefusal("dataplaneWatchdogTimeout", "deprecated by Calico; set healthTimeoutOverrides instead"),
		felixRefusal("netlinkTimeout", "Serval's netlink calls have fixed timeouts"),
		// Encapsulated packets from a workload could carry spoofed inner
		// addresses past policy; Serval has no switch to let them in.
		felixRefusal("allowIPIPPacketsFromWorkloads", "Serval always drops IPIP packets from workloads (input and forward, while IPIP is in use)", "false"),
		felixRefusal("allowVXLANPacketsFromWorkloads", "Serval always drops VXLAN packets from workloads (to the VXLAN port, input and forward)", "false"),
		felixRefusal("disableConntrackInvalidCheck", "Serval always drops packets conntrack finds invalid", "false"),
		felixRefusal("policySyncPathPrefix", "Serval has no policy sync API for an application-layer proxy"),
		felixRefusal("natOutgoingExclusions", "Serval excludes only the IP pools' addresses from outgoing NAT", "IPPoolsOnly"),
		felixRefusal("natPortRange", "Serval leaves the source ports of outgoing NAT to the kernel"),
		felixRefusal("iptablesNATOutgoingInterfaceFilter", "Serval's outgoing NAT applies on every interface"),
		felixRefusal("deviceRouteSourceAddress", routes),
		felixRefusal("deviceRouteSourceAddressIPv6", routes),
		felixRefusal("deviceRouteProtocol", routes),
		felixRefusal("ipv4ElevatedRoutePriority", routes),
		felixRefusal("ipv6ElevatedRoutePriority", routes),
		felixRefusal("ipv4NormalRoutePriority", routes),
		felixRefusal("ipv6NormalRoutePriority", routes),
		felixRefusal("removeExternalRoutes", "Serval manages the routes to workload interfaces itself; keeping routes others made there is not implemented", "true"),
		felixRefusal("routeSource", "Serval routes IPAM blocks (CalicoIPAM) only", "CalicoIPAM"),
		felixRefusal("routeSyncDisabled", "Serval always programs workload routes", "false"),
		felixRefusal("nftablesMarkMask", "Serval uses fixed packet mark bits"),
		felixRefusal("wireguardEnabled", "Serval has no WireGuard encryption; traffic would go unencrypted", "false"),
		felixRefusal("wireguardEnabledV6", "Serval has no WireGuard encryption; traffic would go unencrypted", "false"),
		felixRefusal("wireguardHostEncryptionEnabled", "Serval has no WireGuard encryption; traffic would go unencrypted", "false"),
		felixRefusal("awsSrcDstCheck", "Serval does not change AWS instance settings", "DoNothing"),
		felixRefusal("istioAmbientMode", "Serval has no Istio ambient mode support", "Disabled"),
		felixRefusal("nftablesFilterAllowAction", "Serval's allow verdict is accept; Return to a later chain is not implemented", "Accept"),
		felixRefusal("nftablesMangleAllowAction", "Serval's allow verdict is accept; Return to a later chain is not implemented", "Accept"),
		felixRefusal("ipv6Support", "Serval is dual-stack and always programs IPv6 beside IPv4; turning IPv6 off is not implemented", "true"),
		felixRefusal("serviceLoopPrevention", "Serval does not drop or reject traffic to advertised service CIDRs that no service uses", "Disabled"),
	}
}
