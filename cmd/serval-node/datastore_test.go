package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
)

// TestOpenDatastore: the type chooses the backend; a kubeconfig that
// cannot be read is an error naming it. (Both backends' behaviour is
// tested in their packages, on a real etcd and a real API server.)
func TestOpenDatastore(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ds, err := openDatastore(datastore.TypeKubernetes, kubeconfig, datastore.EtcdConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ds.(*kubernetes.Store); !ok {
		t.Errorf("kubernetes type opened a %T", ds)
	}
	ds.Close()
	missing := filepath.Join(dir, "missing")
	if _, err := openDatastore(datastore.TypeKubernetes, missing, datastore.EtcdConfig{}, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing kubeconfig: %v", err)
	}
	ds, err = openDatastore(datastore.TypeEtcdV3, "", datastore.EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ds.(*datastore.Etcd); !ok {
		t.Errorf("etcdv3 type opened a %T", ds)
	}
	ds.Close()
}
