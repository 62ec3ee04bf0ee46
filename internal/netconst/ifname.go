package netconst

import (
	"crypto/sha1"
	"encoding/hex"
	"unicode"
)

// IFNAMSIZ is the size of the kernel's interface name buffer, terminating
// NUL included: a name has at most IFNAMSIZ-1 (15) bytes.
const IFNAMSIZ = 16

// ValidInterfaceName reports whether the kernel would accept name for an
// interface (its dev_valid_name): not empty, at most 15 bytes, not "." or
// "..", and no '/', ':' or white space. Anything built from an interface
// name — a /proc/sys path, an nftables match — must check it first: a name
// like "cali/../all" would otherwise walk out of the interface's directory
// into the settings of every interface.
func ValidInterfaceName(name string) bool {
	if name == "" || len(name) >= IFNAMSIZ || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// VethName is prefix + the first 11 hex digits of the SHA-1 of key: at
// most 15 characters, the kernel's limit. With key "<namespace>.<pod>" it
// is the name Calico gives a pod's veth, so the CNI plugin (which creates
// it) and whoever derives the pod's endpoint from the Kubernetes API agree.
func VethName(prefix, key string) string {
	sum := sha1.Sum([]byte(key))
	return prefix + hex.EncodeToString(sum[:])[:11]
}
