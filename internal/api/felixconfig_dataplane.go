package api

import (
	"regexp"
	"strings"
)

// checkDataplaneFields checks the FelixConfiguration fields the nftables
// dataplane enforces whose form the field tags cannot express.
func checkDataplaneFields(errs *ErrorList, p Path, s *FelixConfigurationSpec) {
	// interfaceExclude: comma-separated interface names, or regular
	// expressions between slashes ("kube-ipvs0,/^veth/").
	for _, e := range strings.Split(s.InterfaceExclude, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case len(e) >= 2 && strings.HasPrefix(e, "/") && strings.HasSuffix(e, "/"):
			if _, err := regexp.Compile(e[1 : len(e)-1]); err != nil {
				errs.Invalid(p.Child("interfaceExclude"), e, "is not a valid regular expression: "+err.Error())
			}
		case len(e) > 15 || strings.ContainsAny(e, "/ \t\n\x00"):
			errs.Invalid(p.Child("interfaceExclude"), e, "is neither an interface name (at most 15 characters, no '/' or space) nor a /regular expression/")
		}
	}
	// The kernel's log prefix holds at most 127 bytes; a longer one would
	// make the agent's whole nftables transaction fail.
	if len(s.LogPrefix) > 127 {
		errs.Invalid(p.Child("logPrefix"), s.LogPrefix, "is longer than 127 characters")
	}
}
