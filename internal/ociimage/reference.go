package ociimage

import (
	"fmt"
	"regexp"
	"strings"
)

// Reference is an image name with a registry and a tag, such as
// registry.k8s.io/pause:3.10.2.
type Reference struct {
	Domain string // registry.k8s.io, localhost:5000
	Path   string // pause, e2e-test-images/agnhost
	Tag    string // 3.10.2
}

// String is the full reference: DOMAIN/PATH:TAG.
func (r Reference) String() string { return r.Domain + "/" + r.Path + ":" + r.Tag }

// The grammar of the distribution project's reference package (the one
// containerd and the kubelet parse names with), restricted to what an
// image we build can be called: a domain name with an optional port (no
// IPv6 literal), lower-case path components, a tag, and no digest (the
// digest is what we are making).
var (
	domainRE        = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$`)
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE           = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
)

// maxNameLength is the reference grammar's limit on DOMAIN/PATH.
const maxNameLength = 255

// ParseReference parses a full reference DOMAIN/PATH:TAG. The domain is
// required, as is the tag: containerd stores a name as given, and the
// kubelet asks for the normalized one (docker.io/library/x:latest for
// "x"), so a short name would be imported under a name nobody asks for.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, "@") {
		return Reference{}, fmt.Errorf("reference %q has a digest: an image being built has none yet", s)
	}
	slash := strings.IndexByte(s, '/')
	if slash < 0 {
		return Reference{}, fmt.Errorf("reference %q has no registry domain (want DOMAIN/PATH:TAG)", s)
	}
	domain, rest := s[:slash], s[slash+1:]
	// The first component is a domain only if it looks like one; "library/x"
	// would be read by containerd as docker.io/library/x.
	if !strings.ContainsAny(domain, ".:") && domain != "localhost" {
		return Reference{}, fmt.Errorf("reference %q has no registry domain: %q is not a host name (want DOMAIN/PATH:TAG)", s, domain)
	}
	if !domainRE.MatchString(domain) {
		return Reference{}, fmt.Errorf("reference %q: invalid registry domain %q", s, domain)
	}
	colon := strings.LastIndexByte(rest, ':')
	if colon < 0 {
		return Reference{}, fmt.Errorf("reference %q has no tag (want DOMAIN/PATH:TAG)", s)
	}
	path, tag := rest[:colon], rest[colon+1:]
	if !tagRE.MatchString(tag) {
		return Reference{}, fmt.Errorf("reference %q: invalid tag %q", s, tag)
	}
	if path == "" {
		return Reference{}, fmt.Errorf("reference %q has no repository path", s)
	}
	for _, c := range strings.Split(path, "/") {
		if !pathComponentRE.MatchString(c) {
			return Reference{}, fmt.Errorf("reference %q: invalid path component %q (lower-case letters and digits, separated by ., _, __ or -)", s, c)
		}
	}
	if n := len(domain) + 1 + len(path); n > maxNameLength {
		return Reference{}, fmt.Errorf("reference %q: name is %d characters long, more than %d", s, n, maxNameLength)
	}
	return Reference{Domain: domain, Path: path, Tag: tag}, nil
}
