// Command serval is Serval's CNI network plugin ("type": "serval"). A
// runtime runs it with CNI_COMMAND and the network configuration on stdin;
// it gets addresses from the IPAM plugin named in ipam.type (serval-ipam,
// host-local, ...), creates the workload's veth and routes and writes its
// WorkloadEndpoint. All of its logic lives in internal/cni.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/servalnet/serval/internal/cni"
	"github.com/servalnet/serval/internal/version"
)

func main() {
	p := &cni.Plugin{}
	skel.PluginMainFuncs(p.Funcs(), cni.SupportedVersions, "Serval CNI plugin "+version.Version)
}
