// Command serval is Serval's CNI network plugin ("type": "serval"). A
// runtime runs it with CNI_COMMAND and the network configuration on stdin;
// it gets addresses from the IPAM plugin named in ipam.type (serval-ipam,
// host-local, ...), creates the workload's veth and routes and writes its
// WorkloadEndpoint. All of its logic lives in internal/cni.
package main

import (
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/servalnet/serval/internal/cni"
	"github.com/servalnet/serval/internal/cni/cniopen"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
	"github.com/servalnet/serval/internal/version"
)

func main() {
	cni.TuneGC()
	p := &cni.Plugin{
		OpenDatastore: cniopen.Open,
		// serval-ipam runs in this process (no second exec); other IPAM
		// types are delegated.
		NewIPAM: func(ds datastore.Interface, log *slog.Logger) (ipam.Interface, error) {
			return ipam.New(ds, ipam.Config{Logger: log}), nil
		},
	}
	skel.PluginMainFuncs(p.Funcs(), cni.SupportedVersions, "Serval CNI plugin "+version.Version)
}
