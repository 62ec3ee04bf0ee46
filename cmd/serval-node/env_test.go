package main

import (
	"testing"
	"time"
)

func TestEnvBool(t *testing.T) {
	tests := []struct {
		value   string
		set     bool
		def     bool
		want    bool
		wantErr bool
	}{
		{"", false, true, true, false},
		{"", true, false, false, false},
		{"true", true, false, true, false},
		{"TRUE", true, false, true, false},
		{"True", true, false, true, false},
		{"1", true, false, true, false},
		{"t", true, false, true, false},
		{"false", true, true, false, false},
		{"FALSE", true, true, false, false},
		{"0", true, true, false, false},
		{"f", true, true, false, false},
		{"yes", true, true, true, true},
		{"on", true, false, false, true},
	}
	for _, tt := range tests {
		lookup := func(string) (string, bool) { return tt.value, tt.set }
		got, err := envBool(lookup, "SERVAL_BGP", tt.def)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v, want error %v", tt.value, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("%q: %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestEnvDuration(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", time.Minute, false},
		{"5s", 5 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"5", 0, true},
		{"-1s", 0, true},
	}
	for _, tt := range tests {
		got, err := envDuration(func(string) (string, bool) { return tt.value, true }, "SERVAL_BGP_READY_GRACE", time.Minute)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("%q: %v, %v; want %v (error %v)", tt.value, got, err, tt.want, tt.wantErr)
		}
	}
}
