// Package dataplane programs one host's kernel from the calculation
// graph's output (hoststate): an nftables table of Serval's own for policy,
// routes to local workloads and blocks, and workload interface settings.
//
// Design, after Felix's nftables table: callbacks record desired state and
// mark it dirty; Apply renders what is dirty into a model of the table,
// diffs it against what the kernel holds (per chain by chained rule hashes
// kept in rule comments, per set by elements) and writes the difference as
// ONE transaction; a periodic resync reads the table back and repairs
// anything changed behind its back. Nothing is deleted before OnInSync, so
// a restarted node reconciles rather than flushes.
//
// Table layout (family inet, name "serval"):
//
//	forward/input/output (filter, priority 0): conntrack first
//	  (established,related accept; invalid drop), then dispatch by
//	  verdict maps keyed on the interface name:
//	    iifname vmap @wl-from  → fw-<ep>  (anti-spoof, egress tiers, profiles)
//	    oifname vmap @wl-to    → tw-<ep>  (ingress tiers, profiles)
//	    host endpoints: @hep-in, @hep-out, @hep-fwd-in, @hep-fwd-out
//	  workload → host follows DefaultEndpointToHostAction; failsafe ports.
//	prerouting (filter, -150): preDNAT policy via @hep-prednat
//	raw-prerouting/raw-output (filter, -300): doNotTrack via @hep-raw-*
//	nat-prerouting/nat-output (nat, -100): floating IPs' DNAT (floatingip.go)
//	nat-postrouting (nat, 100): floating IPs' hairpin SNAT, natOutgoing
//	  masquerade (or SNAT to natOutgoingAddress)
//	pi-/po-<policy>, ri-/ro-<profile>: one chain per policy direction
//	  that does not compile (see below) and per profile direction
//	e4-/c4-/e6-/c6-<run>: the sets of one compiled run of policies
//
// A policy chain signals Allow and Pass to its endpoint chain with mark
// bits (MarkAccept, MarkPass) and a return; Deny drops at once; Log logs
// and goes on. An endpoint chain walks the tiers in order: after each
// policy, an accepted packet returns to the dispatcher; a passed one skips
// the rest of its tier; a tier that matched nothing ends in its default
// action. Profiles follow the tiers; nothing matched is dropped.
//
// Compiled runs (compile.go): consecutive policies of a tier whose rules
// all share one action (Allow, Deny or Pass) and match only a protocol with
// ports, destination ports and one peer address criterion become ONE test
// in the endpoint chain, "peer address . l4proto . dport" looked up in a
// hash set of exact elements and an interval set of ranges per family, so
// the first packet of a connection costs the same with 5 or 5,000 such
// policies. Everything else stays a jump to its policy chain, in order; a
// run never crosses such a jump. Runs are named by direction and policy
// list, so endpoints with the same policies share their sets.
//
// At scale (100,000 remote endpoints in IP sets): a run keeps each
// policy's share as terms (IP set, protocol, port), not as copies of the
// set's members, and IP set deltas go straight to the run's elements; an
// IP set is in the kernel only while a chain tests it (a set used only
// by compiled runs is already in their sets); and the snapshot of what
// the kernel holds shares a set's elements with the desired set while
// they are equal. Elements and IP set members are packed map keys (48
// and 22 bytes, addresses without netip.Addr's zone pointer, a verdict
// map's interface and chain one interned handle). A plan of more than
// 20,000 elements fills the sets it creates in transactions of at most
// that many before the one transaction whose rules use them: no rule sees
// a set before it is full, and the netlink messages of 200,000 elements
// are never in memory at once.
//
// Usage:
//
//	nft := dataplane.NewKernelNFT(func() (dataplane.Conn, error) { return dataplane.NewConn() })
//	h, _ := netlink.NewHandle()
//	dp, err := dataplane.New(dataplane.Options{Logger: log, NFT: nft, Routes: h, Sysctl: dataplane.ProcSysctl{}})
//	if err != nil { ... }
//	graph := calc.New(dp)     // the graph calls dp's hoststate.Callbacks
//	go dp.Run(ctx)            // applies after updates, resyncs periodically
//
// Drift repair (drift.go, vmapread.go): the resync compares content, not
// only hashes: each rule's expressions are read back and fingerprinted
// against the rule Serval would write, and verdict map elements are read
// with their verdicts decoded. Host endpoints by expectedIPs and
// interfaceExclude follow the host's interfaces and addresses
// (hostifaces.go); FelixConfiguration's deny action, Log rate limit and
// refresh intervals are in deny.go, loglimit.go and refresh.go.
//
// The Dataplane type is spread over files by concern: dataplane.go (the
// type, New and Run), callbacks.go (hoststate.Callbacks: queue the update,
// poke Run), apply.go (Apply: one nftables transaction, then routes and
// interface settings), renderdirty.go (rendering what is dirty into the
// desired table) and desired.go (the desired table's chains and sets, what
// owns them, who uses which set, policy and profile).
//
// Tests use NewFakeNFT, NewFakeRoutes and NewFakeSysctl, strict fakes that
// fail on anything the kernel would refuse, and call Apply directly.
package dataplane
