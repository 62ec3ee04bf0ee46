package main

import (
	"fmt"
	"strconv"
)

// parseMaxPrefixes reads --bgp-max-prefixes: a count, or 0 (or less) for
// no limit, which routing.Config spells as a negative number.
func parseMaxPrefixes(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	if n <= 0 {
		return -1, nil
	}
	return n, nil
}
