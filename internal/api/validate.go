package api

import (
	"strings"
)

// Validate checks a whole resource: its type, its metadata and its spec. It
// returns nil or a *ValidationError listing every problem.
func Validate(r Resource) error {
	var errs ErrorList
	tm := r.GetTypeMeta()
	info, known := kinds[tm.Kind]
	if !known {
		errs.Invalid("kind", tm.Kind, "is not a known kind (known: "+KindNames()+")")
	}
	if tm.APIVersion != APIVersion {
		errs.Invalid("apiVersion", tm.APIVersion, "is not supported (use "+APIVersion+")")
	}
	m := r.GetObjectMeta()
	validateMeta(&errs, m, info.Namespaced)
	errs = append(errs, r.Validate()...)
	if known && len(errs) == 0 {
		// Valid by Calico's rules; now, can Serval honour it? (support.go)
		refuseUnsupported(&errs, r)
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Key: KeyOf(r), Errors: errs}
}

func validateMeta(errs *ErrorList, m *ObjectMeta, namespaced bool) {
	p := Path("metadata")
	switch {
	case m.Name == "":
		errs.Required(p.Child("name"))
	default:
		if msg := CheckDNS1123Subdomain(m.Name); msg != "" {
			errs.Invalid(p.Child("name"), m.Name, msg)
		}
	}
	if namespaced {
		if m.Namespace == "" {
			errs.Required(p.Child("namespace"))
		} else if msg := CheckDNS1123Label(m.Namespace); msg != "" {
			errs.Invalid(p.Child("namespace"), m.Namespace, msg)
		}
	} else if m.Namespace != "" {
		errs.Forbidden(p.Child("namespace"), "this kind is not namespaced")
	}
	ValidateLabels(errs, p.Child("labels"), m.Labels)
	for k := range m.Annotations {
		if msg := CheckQualifiedName(k); msg != "" {
			errs.Invalid(p.Child("annotations").Key(k), k, "is not a valid annotation key: "+msg)
		}
	}
}

// ValidateLabels checks a label map: keys are qualified names
// ([prefix/]name), values at most 63 characters of [A-Za-z0-9_.-].
func ValidateLabels(errs *ErrorList, p Path, labels map[string]string) {
	for k, v := range labels {
		if msg := CheckQualifiedName(k); msg != "" {
			errs.Invalid(p.Key(k), k, "is not a valid label key: "+msg)
		}
		if msg := CheckLabelValue(v); msg != "" {
			errs.Invalid(p.Key(k), v, "is not a valid label value: "+msg)
		}
	}
}

// The name checks below run for every object the agent reads (100,000
// endpoints at start-up), so they scan bytes instead of running regular
// expressions; validate_test.go checks them against the expressions
// Kubernetes defines.

// isDNS1123Label: [a-z0-9]([-a-z0-9]*[a-z0-9])?
func isDNS1123Label(s string) bool {
	return alnumEnds(s, isLowerAlnum, func(c byte) bool { return isLowerAlnum(c) || c == '-' })
}

// isQualifiedPart: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
func isQualifiedPart(s string) bool {
	return alnumEnds(s, isAlnum, func(c byte) bool { return isAlnum(c) || c == '-' || c == '_' || c == '.' })
}

// alnumEnds reports whether s is not empty, starts and ends with a byte
// ends accepts and has only bytes middle accepts in between.
func alnumEnds(s string, ends, middle func(byte) bool) bool {
	if s == "" || !ends(s[0]) || !ends(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !middle(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || ('A' <= c && c <= 'Z') }

// CheckDNS1123Label returns "" when s is a DNS-1123 label (as Kubernetes
// names namespaces), or why not.
func CheckDNS1123Label(s string) string {
	if len(s) > 63 {
		return "must be no more than 63 characters"
	}
	if !isDNS1123Label(s) {
		return "must consist of lower case letters, digits and '-', and start and end with a letter or digit"
	}
	return ""
}

// CheckDNS1123Subdomain returns "" when s is a DNS-1123 subdomain (the rule
// for resource names), or why not.
func CheckDNS1123Subdomain(s string) string {
	if len(s) > 253 {
		return "must be no more than 253 characters"
	}
	for rest := s; ; {
		part, more, found := strings.Cut(rest, ".")
		if !isDNS1123Label(part) {
			return "must consist of lower case letters, digits, '-' and '.', and each dot-separated part must start and end with a letter or digit"
		}
		if !found {
			return ""
		}
		rest = more
	}
}

// CheckQualifiedName returns "" when s is a Kubernetes qualified name
// ("app", "projectcalico.org/namespace"), or why not.
func CheckQualifiedName(s string) string {
	name := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		prefix := s[:i]
		name = s[i+1:]
		if prefix == "" {
			return "prefix before '/' must not be empty"
		}
		if msg := CheckDNS1123Subdomain(prefix); msg != "" {
			return "prefix " + msg
		}
	}
	if name == "" {
		return "name must not be empty"
	}
	if len(name) > 63 {
		return "name must be no more than 63 characters"
	}
	if !isQualifiedPart(name) {
		return "name must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit"
	}
	return ""
}

// CheckLabelValue returns "" when s is a valid label value, or why not.
func CheckLabelValue(s string) string {
	if len(s) > 63 {
		return "must be no more than 63 characters"
	}
	if s != "" && !isQualifiedPart(s) {
		return "must be empty or consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit"
	}
	return ""
}
