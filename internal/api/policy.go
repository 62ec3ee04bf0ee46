package api

import (
	"strings"
)

// DefaultTierName is the tier a policy belongs to when it names none. It is
// evaluated after every other tier of lower order and before profiles.
const DefaultTierName = "default"

var (
	labelFmt = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	// A NetworkPolicy name is a DNS label, two labels joined by one dot, or
	// a name Calico derives from another API ("knp.default.*", "ossg.default.*").
	networkPolicyNameRE = newLazyRegexp(`^((` + labelFmt + `)(\.` + labelFmt + `)?|((knp|ossg)\.default\.` + labelFmt + `(\.` + labelFmt + `)*))$`)
	// A GlobalNetworkPolicy name is a DNS label, two labels joined by one
	// dot, or the name Calico gives a Kubernetes ClusterNetworkPolicy
	// ("kcnp.kube-admin.*", "kcnp.kube-baseline.*").
	globalNetworkPolicyNameRE = newLazyRegexp(`^((` + labelFmt + `\.)?` + labelFmt + `|kcnp\.kube-(admin|baseline)\.` + labelFmt + `(\.` + labelFmt + `)*)$`)
)

// checkPolicyName applies the stricter naming rule of policies. Calico
// before v3.30 also required a policy outside the default tier to be named
// "<tier>.<name>"; current Calico dropped that rule (a name may, but need
// not, carry its tier as a prefix), and so does Serval.
func checkPolicyName(errs *ErrorList, name string, re *lazyRegexp) {
	if name == "" || CheckDNS1123Subdomain(name) != "" {
		return // the metadata check already reports it
	}
	if !re.MatchString(name) {
		why := "is not a valid policy name: it must be a DNS label (lower case letters, digits and '-'), optionally prefixed by one more label and a dot"
		if strings.Count(name, ".") > 1 {
			why = "is not a valid policy name: it may contain at most one '.'"
		}
		errs.Invalid("metadata.name", name, why)
	}
}

// validatePolicyCommon checks what NetworkPolicy and GlobalNetworkPolicy
// share.
func validatePolicyCommon(errs *ErrorList, tier string, ingress, egress []Rule, selector, saSelector string,
	types []PolicyType, hints []PolicyPerformanceHint) {
	p := Path("spec")
	if tier != "" {
		if msg := CheckDNS1123Label(tier); msg != "" {
			errs.Invalid(p.Child("tier"), tier, "is not a valid tier name: "+msg)
		}
	}
	checkSelector(errs, p.Child("selector"), selector)
	checkNoGlobal(errs, p.Child("selector"), selector)
	checkSelector(errs, p.Child("serviceAccountSelector"), saSelector)
	checkNoGlobal(errs, p.Child("serviceAccountSelector"), saSelector)
	validateTypes(errs, p.Child("types"), types)
	validateRules(errs, p.Child("ingress"), ingress, PolicyTypeIngress, true)
	validateRules(errs, p.Child("egress"), egress, PolicyTypeEgress, true)
	validateHints(errs, p.Child("performanceHints"), hints)
}
