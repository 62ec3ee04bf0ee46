package crd

import (
	"reflect"

	"github.com/servalnet/serval/internal/api"
)

// selfMarshalled are the schemas of the types of internal/api that encode
// themselves (numorstring.go). Each accepts at least every JSON value the
// type's UnmarshalJSON turns into a valid value; Serval's validation judges
// the rest.
var selfMarshalled = map[reflect.Type]func() *Schema{
	// A protocol name or number: "TCP", 6.
	reflect.TypeOf(api.Protocol{}): intOrString,
	// A port, a range or a port name: 80, "8080:8090", "http".
	reflect.TypeOf(api.Port{}): intOrString,
	// An AS number, plain or dotted: 64512, "1.10".
	reflect.TypeOf(api.ASNumber{}): intOrString,
	// A Go duration: "90s". A bare number is not one (Serval refuses it too).
	reflect.TypeOf(api.Duration{}): func() *Schema { return &Schema{Type: "string"} },
}

func intOrString() *Schema { return &Schema{XIntOrString: true} }

// enums are the typed strings of internal/api whose values are a fixed list
// that Serval's validation checks exactly (case matters).
var enums = map[reflect.Type][]string{
	reflect.TypeOf(api.Action("")):           {"Allow", "Deny", "Log", "Pass"},
	reflect.TypeOf(api.PolicyType("")):       {"Ingress", "Egress"},
	reflect.TypeOf(api.EncapMode("")):        {"Never", "Always", "CrossSubnet"},
	reflect.TypeOf(api.IPPoolAllowedUse("")): {"Workload", "Tunnel", "LoadBalancer"},
	reflect.TypeOf(api.AssignmentMode("")):   {"Automatic", "Manual"},
	reflect.TypeOf(api.StagedAction("")):     {"Set", "Delete"},
	reflect.TypeOf(api.AffinityState("")):    {"pending", "confirmed", "pendingDeletion"},
}

// fieldEnums narrow the enum of one field of a struct: a Tier's default
// action is an Action, but only Deny or Pass.
var fieldEnums = map[reflect.Type]map[string][]string{
	reflect.TypeOf(api.TierSpec{}): {"defaultAction": {"Deny", "Pass"}},
}

// set is a CEL test that a string field is present and not empty: Serval
// takes "" as unset.
func set(field string) string { return "(has(self." + field + ") && self." + field + " != '')" }

// notBoth is a rule that two string fields are not both set.
func notBoth(a, b, message string) ValidationRule {
	return ValidationRule{Rule: "!(" + set(a) + " && " + set(b) + ")", Message: message}
}

// celRules are the CEL rules of a struct's schema: checks that tie two of
// its fields together and fit one simple expression, each exactly Serval's
// rule (never stricter). The API server estimates their cost from the
// largest lists a request could hold; rules on structs inside lists stay
// within its budget because each is a constant-time test.
var celRules = map[reflect.Type][]ValidationRule{
	reflect.TypeOf(api.IPPoolSpec{}): {{
		Rule: "!(has(self.ipipMode) && self.ipipMode in ['Always', 'CrossSubnet'] && " +
			"has(self.vxlanMode) && self.vxlanMode in ['Always', 'CrossSubnet'])",
		Message: "ipipMode and vxlanMode must not both be enabled: a pool uses at most one encapsulation",
	}},
	reflect.TypeOf(api.FelixConfigurationSpec{}): {{
		Rule:    "!(has(self.routeTableRange) && has(self.routeTableRanges))",
		Message: "routeTableRange must not be set together with routeTableRanges",
	}},
	reflect.TypeOf(api.BGPPeerSpec{}): {
		notBoth("node", "nodeSelector", "node must not be set together with nodeSelector"),
		notBoth("peerIP", "peerSelector", "peerIP must not be set together with peerSelector"),
	},
	reflect.TypeOf(api.ICMPFields{}): {{
		Rule:    "!has(self.code) || has(self.type)",
		Message: "code needs type to be set too",
	}},
	reflect.TypeOf(api.HTTPPath{}): {{
		Rule:    set("exact") + " != " + set("prefix"),
		Message: "must set exactly one of exact and prefix",
	}},
}
