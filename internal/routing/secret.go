package routing

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/servalnet/serval/internal/api"
)

// SecretSource resolves a BGPPeer's (or the mesh's) password reference.
// Calico reads Kubernetes secrets; Serval, which has no Kubernetes, reads
// them from a source the daemon chooses (a directory of files, the
// environment). Implementations must be safe for concurrent use.
type SecretSource interface {
	Secret(name, key string) (string, error)
}

// ErrSecretNotFound is returned (wrapped) by a SecretSource that has no
// such secret.
var ErrSecretNotFound = errors.New("secret not found")

// FileSecrets reads secret "name", key "key" from the file Dir/name/key,
// the layout Kubernetes uses when it mounts a secret, with one trailing
// newline removed (editors add one). Names and keys are checked so that a
// resource cannot make it read outside Dir.
type FileSecrets struct {
	Dir string
}

// Secret implements SecretSource.
func (f FileSecrets) Secret(name, key string) (string, error) {
	if !safeSecretPart(name) || !safeSecretPart(key) {
		return "", fmt.Errorf("secret %q key %q: invalid name", name, key)
	}
	path := filepath.Join(f.Dir, name, key)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("secret %q key %q (%s): %w", name, key, path, ErrSecretNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("secret %q key %q: %w", name, key, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func safeSecretPart(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

// EnvSecrets reads secret "name", key "key" from the environment variable
// Prefix + NAME_KEY, upper-cased, with every character that is not a letter
// or digit turned into '_': secret "bgp-passwords" key "tor1" is
// SERVAL_SECRET_BGP_PASSWORDS_TOR1 with the default prefix.
type EnvSecrets struct {
	// Prefix defaults to "SERVAL_SECRET_".
	Prefix string
	// Lookup defaults to os.LookupEnv; tests replace it.
	Lookup func(string) (string, bool)
}

// EnvName is the variable EnvSecrets reads for name and key.
func (e EnvSecrets) EnvName(name, key string) string {
	prefix := e.Prefix
	if prefix == "" {
		prefix = "SERVAL_SECRET_"
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
				return r
			}
			return '_'
		}, s)
	}
	return prefix + clean(name) + "_" + clean(key)
}

// Secret implements SecretSource.
func (e EnvSecrets) Secret(name, key string) (string, error) {
	lookup := e.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(e.EnvName(name, key))
	if !ok {
		return "", fmt.Errorf("secret %q key %q (environment variable %s): %w", name, key, e.EnvName(name, key), ErrSecretNotFound)
	}
	return v, nil
}

// SecretSources tries each source in turn and returns the first secret
// found; an error other than not-found stops the search.
type SecretSources []SecretSource

// Secret implements SecretSource.
func (ss SecretSources) Secret(name, key string) (string, error) {
	var errs []error
	for _, s := range ss {
		v, err := s.Secret(name, key)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrSecretNotFound) {
			return "", err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("secret %q key %q: no sources: %w", name, key, ErrSecretNotFound)
	}
	return "", errors.Join(errs...)
}

// MapSecrets is an in-memory SecretSource keyed by "name/key", for tests
// and for callers that already hold the secrets.
type MapSecrets map[string]string

// Secret implements SecretSource.
func (m MapSecrets) Secret(name, key string) (string, error) {
	v, ok := m[name+"/"+key]
	if !ok {
		return "", fmt.Errorf("secret %q key %q: %w", name, key, ErrSecretNotFound)
	}
	return v, nil
}

func resolvePassword(pw *api.BGPPassword, secrets SecretSource, what string, problem func(string, ...any)) (string, bool) {
	ref := pw.SecretKeyRef
	if ref == nil {
		return "", true
	}
	optional := ref.Optional != nil && *ref.Optional
	if secrets == nil {
		if optional {
			return "", true
		}
		problem("%s: no secret source configured; session skipped", what)
		return "", false
	}
	v, err := secrets.Secret(ref.Name, ref.Key)
	if err != nil {
		if optional && errors.Is(err, ErrSecretNotFound) {
			return "", true
		}
		// A session without its password would either never come up or,
		// worse, come up unauthenticated: leave it out.
		problem("%s: %v; session skipped", what, err)
		return "", false
	}
	return v, true
}
