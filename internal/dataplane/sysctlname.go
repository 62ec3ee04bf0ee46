package dataplane

import (
	"fmt"
	"strings"
)

// checkSysctlName refuses a sysctl name that is not a plain relative path
// below /proc/sys: an empty, ".", ".." or absolute element would let a name
// built from untrusted input (an interface name) reach other settings.
func checkSysctlName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") {
		return fmt.Errorf("sysctl %q: not a relative name", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("sysctl %q: element %q is not allowed", name, el)
		}
	}
	return nil
}
