package api

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// The byte-scanning name checks agree with the regular expressions
// Kubernetes defines them by, on chosen and on random strings.
func TestNameChecksMatchTheirRegexps(t *testing.T) {
	label := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	qualified := regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	value := regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	inputs := []string{"", "a", "A", "0", "-", ".", "_", "a-", "-a", "a-b", "a.b", "a_b", "a..b", "aB", "a b", "é", "a\n", "ab-", "9z"}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aZ9-_. /é\x00"
	for range 20000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		if got, want := isDNS1123Label(s), label.MatchString(s); got != want {
			t.Errorf("isDNS1123Label(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := isQualifiedPart(s), qualified.MatchString(s); got != want {
			t.Errorf("isQualifiedPart(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := CheckLabelValue(s) == "", len(s) <= 63 && value.MatchString(s); got != want {
			t.Errorf("CheckLabelValue(%q) ok = %v, regexp says %v", s, got, want)
		}
	}
}
