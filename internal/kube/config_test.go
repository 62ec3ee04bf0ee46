package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: secret}
contexts:
- name: lab
  context: {cluster: lab, user: admin}
current-context: lab
`

func TestRESTConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("clusters: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, env, wantHost, wantErr string
	}{
		{name: "flag", path: good, wantHost: "https://127.0.0.1:6443"},
		{name: "env", env: good, wantHost: "https://127.0.0.1:6443"},
		{name: "flag wins over env", path: good, env: bad, wantHost: "https://127.0.0.1:6443"},
		{name: "bad file names it", path: bad, wantErr: bad},
		{name: "missing file names it", path: filepath.Join(dir, "none"), wantErr: "none"},
		{name: "nothing at all", wantErr: "--kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvKubeconfig, tc.env)
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			cfg, err := RESTConfig(tc.path, "serval-test")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost || cfg.BearerToken != "secret" || cfg.UserAgent != "serval-test" {
				t.Errorf("host %q token %q agent %q", cfg.Host, cfg.BearerToken, cfg.UserAgent)
			}
		})
	}
}
