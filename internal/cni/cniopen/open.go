package cniopen

import (
	"log/slog"

	"github.com/servalnet/serval/internal/cni"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
)

// Open opens the datastore conf names, each request bounded by its
// datastore_timeout.
func Open(conf *cni.NetConf, log *slog.Logger) (datastore.Interface, error) {
	typ, err := conf.DatastoreTypeOf()
	if err != nil {
		return nil, err
	}
	if typ != datastore.TypeKubernetes {
		return cni.OpenEtcd(conf, log)
	}
	timeout := conf.EtcdConfig().RequestTimeout
	return kubernetes.Open(conf.Kubernetes.Kubeconfig, "serval-cni", log, kubernetes.WithRequestTimeout(timeout))
}
