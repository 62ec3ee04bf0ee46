// Package bgp tests Serval's BGP on serval-lab: real namespaces, real
// serval-node binaries (built once by TestMain), real BIRD 2 and FRR
// routers from the Debian packages. Every test needs root and skips
// without it.
//
// What each test shows:
//
//   - TestMesh: the node-to-node mesh (every host learns every other
//     host's block, servalctl node status shows the mesh Established),
//     ECMP (two hosts advertise one service range: one kernel route with
//     both next hops, down to one when a host stops advertising it),
//     graceful restart (a host whose agent is killed keeps its routes on
//     its peers and its workloads reachable) and withdrawal when an agent
//     stops.
//   - TestReflectors: the mesh off, two Serval nodes as a route-reflector
//     pair that the others reach through a global peerSelector BGPPeer,
//     per-node BGPPeers with TCP MD5 (a wrong password never establishes),
//     and withdrawal when a host's fabric link is cut, within the short
//     hold time its BGPPeer sets.
//   - TestRouterInterop: BIRD 2 and FRR as top-of-rack router, each as
//     eBGP (an AS per host) and as iBGP route reflector: the router learns
//     every block, a plain host behind it reaches workloads over plain IP
//     hops, and the routes it advertises are programmed on the hosts.
package bgp
