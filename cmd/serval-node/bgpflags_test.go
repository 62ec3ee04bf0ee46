package main

import "testing"

func TestParseMaxPrefixes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{{"10000", 10000, false}, {"1", 1, false}, {"0", -1, false}, {"-5", -1, false}, {"ten", 0, true}, {"", 0, true}} {
		got, err := parseMaxPrefixes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseMaxPrefixes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
