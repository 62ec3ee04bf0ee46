package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

// env returns the environment variable's value, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envBool reads a boolean environment variable as strconv.ParseBool does
// (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False); unset or
// empty is def. Anything else is an error naming the variable, never a
// silent false.
func envBool(lookup func(string) (string, bool), name string, def bool) (bool, error) {
	v, ok := lookup(name)
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("$%s=%q is not a boolean (want true or false, 1 or 0)", name, v)
	}
	return b, nil
}

// given says whether flag name was set on the command line or its
// environment variable is set (not empty).
func given(fs *flag.FlagSet, name, envName string) bool {
	set := os.Getenv(envName) != ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// envDuration reads a duration environment variable ("90s", "1m");
// unset or empty is def, anything else an error naming the variable.
func envDuration(lookup func(string) (string, bool), name string, def time.Duration) (time.Duration, error) {
	v, ok := lookup(name)
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return def, fmt.Errorf("$%s=%q is not a duration (e.g. 60s, 2m)", name, v)
	}
	return d, nil
}
