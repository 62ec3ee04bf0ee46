package datastore

import (
	"fmt"
	"strings"
)

// Datastore types, as --datastore-type and SERVAL_DATASTORE_TYPE spell
// them (Calico's DATASTORE_TYPE values).
const (
	TypeEtcdV3     = "etcdv3"
	TypeKubernetes = "kubernetes"
)

// EnvType is the environment variable every binary reads the datastore
// type from when no flag gives it.
const EnvType = "SERVAL_DATASTORE_TYPE"

// ParseType reads a datastore type: "etcdv3" (also "etcd", and the
// default when empty) or "kubernetes" (also "k8s").
func ParseType(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "etcd", TypeEtcdV3:
		return TypeEtcdV3, nil
	case "k8s", TypeKubernetes:
		return TypeKubernetes, nil
	}
	return "", fmt.Errorf("datastore type %q: want %s or %s", s, TypeEtcdV3, TypeKubernetes)
}
