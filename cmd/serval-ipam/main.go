// Command serval-ipam is Serval's CNI IPAM plugin ("type": "serval-ipam"):
// addresses from Serval's IP pools, in blocks affine to this host, one
// handle per attachment. It serves the serval plugin and any other CNI
// plugin that delegates IPAM. All of its logic lives in internal/cni and
// internal/ipam.
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
	p := &cni.IPAMPlugin{
		OpenDatastore: cniopen.Open,
		NewIPAM: func(ds datastore.Interface, log *slog.Logger) (ipam.Interface, error) {
			return ipam.New(ds, ipam.Config{Logger: log}), nil
		},
	}
	skel.PluginMainFuncs(p.Funcs(), cni.SupportedVersions, "Serval CNI IPAM plugin "+version.Version)
}
