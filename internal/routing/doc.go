// Package routing is Serval's BGP: it decides what this host's BGP speaker
// should look like, runs an embedded GoBGP server to match, and programs
// the routes it learns into the kernel.
//
// Two halves, kept apart so that the first is pure:
//
//	datastore resources ──▶ Compute (pure) ──▶ Desired ──▶ Speaker.Reconcile
//	 Nodes, BGPConfigurations,                               │ GoBGP (one goroutine owns it)
//	 BGPPeers, IPPools, this                                 │  sessions: mesh / global / node specific,
//	 host's blocks + borrowed IPs                            │  route reflector clients, MD5, GR, GTSM
//	                                                         ▼
//	                                   best paths ─▶ ECMP sets ─▶ kernel routes (proto netconst.RouteProtocol)
//
// Compute follows Calico's semantics: local AS from the Node, else the
// "default" BGPConfiguration, else 64512; a node-to-node mesh unless
// nodeToNodeMeshEnabled is false; BGPPeers per node, per nodeSelector or
// global, to a peerIP or to the nodes a peerSelector picks; a node with a
// routeReflectorClusterID reflects to every Serval node peer outside its
// cluster. It advertises the host's blocks (as block CIDRs), /32 (/128)
// routes for borrowed addresses, nothing from disableBGPExport pools, and
// the service ranges, with the communities prefixAdvertisements ask for.
// Problems with single resources are reported in Desired.Problems and do
// not stop the rest.
//
// Two GoBGP policies, global because GoBGP has per-neighbor policies only
// for route-server clients, carry per-peer behaviour: an export policy for
// nextHopMode, and on a reflector an import policy that drops our own
// clients' routes when a reflector of the same cluster reflects them back
// (RFC 4456's CLUSTER_LIST check, which GoBGP does not do on receipt;
// without it a reflector pair can keep a lost client's block for good).
//
// BGPPeer.filters (BGPFilter rules: Accept or Reject by cidr and match
// operator, prefix length, source RemotePeers; first match wins, default
// Accept) become two more global policies, each statement limited to its
// session by a neighbor set (filters.go). Interface matches are refused:
// Serval exports no interface routes. A session whose filter is missing
// or cannot be honoured is left out rather than run unfiltered.
//
// What a peer can do to a host is bounded: it may send at most
// Config.MaxPrefixes prefixes per family (GoBGP cuts the session past
// it), and a learned route equal to or inside one of this host's workload
// addresses or own subnets (Desired.Protected) is never programmed, nor
// one of its blocks or a part of one other than a host route (another
// host's borrowed address) (protect.go).
//
// The Speaker owns its GoBGP server on one goroutine; methods send it
// closures. The kernel has a goroutine of its own (kernelsync.go): BGP
// events mark the prefixes they touch, and only those are looked up in
// the RIB and written, from a cache of the kernel table that a full read
// refreshes every ResyncInterval, so the work per event follows what it
// changed and the status never waits for a large RIB. It programs learned
// routes inside the IP pools, with ECMP over paths equal up to the
// tie-breakers, and only ever touches unicast gateway routes of its own
// protocol: a route of another protocol, or a workload (link-scope) or
// blackhole route of Serval's protocol, for the same destination wins and
// the learned route stands aside.
//
// Files: config.go (Compute and its Input), desired.go (Desired, Peer,
// Advertisement, communities), nodes.go (a Node's BGP address, AS and
// router ID), secret.go (SecretSource and passwords), filters.go and
// policy.go (GoBGP policies), protect.go (Desired.Protected), speaker.go
// (the GoBGP server), learned.go, kernel.go and kernelsync.go (learned
// routes into the kernel).
//
// Use (serval-node):
//
//	sp := routing.NewSpeaker(routing.Config{
//		Logger:      logger,
//		Netlink:     nlHandle, // *netlink.Handle
//		StartupHold: 2 * time.Minute,
//		MaxPrefixes: 0, // routing.DefaultMaxPrefixes
//	})
//	defer sp.Stop()
//	secrets := routing.SecretSources{routing.FileSecrets{Dir: "/etc/serval/secrets"}, routing.EnvSecrets{}}
//	// on every relevant datastore change (merged through a size-1 trigger):
//	d, err := routing.Compute(routing.Input{
//		NodeName: name, Nodes: nodes, BGPConfigs: cfgs, Peers: peers, Pools: pools,
//		Filters: filters, OwnedBlocks: blocks, BorrowedIPs: borrowed,
//	}, secrets)
//	if err != nil { ... }
//	for _, p := range d.Problems { logger.Warn("BGP configuration", "problem", p) }
//	if err := sp.Reconcile(ctx, d); err != nil { ... } // retried on the next change
//	// servalctl node status:
//	peers, err := sp.Status(ctx)
package routing
