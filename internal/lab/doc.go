// Package lab builds a virtual data center on one Linux machine out of
// network namespaces and runs Serval's real binaries in it: the engine of
// serval-lab, the demo and the end-to-end tests.
//
// A lab called NAME is made of:
//
//	svl-NAME-fabric      a bridge (br0): the shared layer-2 segment
//	svl-NAME-<host>      one per host, eth0 on the fabric, forwarding on,
//	                     serval-node running in it once that binary exists
//	svl-NAME-<router>    optional top-of-rack router (BIRD 2, or FRR's zebra and bgpd)
//	                     peering with every host: eBGP with hosts of another AS,
//	                     iBGP route reflector for hosts of its own
//	svl-NAME-<external>  optional plain hosts on a segment of their own (bridge brx
//	                     in the fabric namespace) behind the router, default route via it
//	svl-NAME-datastore   etcd (servalctl datastore serve), reachable from every host;
//	                     for an etcd-cluster, Debian's etcd members etcd1..etcdN, each
//	                     on an address of its own here
//	svl-NAME-<workload>  one per workload, wired to its host by serval-cni (libcni ADD
//	                     run from the host's namespace, exactly as a container runtime)
//
// and /run/serval-lab/NAME (state.json, pids/, logs/, etcd/, bird.conf, or
// frr/ with FRR's configs, pid files and zserv/vty sockets, so that several
// labs and the machine's own FRR never share one; FRR drops to the frr
// user as its Debian service does).
// Every veth is created inside lab namespaces and the fabric is not in the
// real host's namespace, so a lab never touches the host's own interfaces,
// routes or firewall, and deleting the namespaces removes every link. Down
// works from what it finds (pidfiles, then any process whose network
// namespace is one of the lab's, then the namespaces, then the directory),
// so it cleans up after a crash as well.
//
// With "fabric: wire" (exactly two hosts, no router) there is no fabric
// namespace: the two hosts' eth0 are the ends of one veth pair, each host's
// default route points at the other, and the datastore namespace reaches
// each host over a management veth of its own (mgmt0 in the host), off the
// wire.
//
// Probes run inside serval-lab itself: a goroutine locked to an OS thread
// enters the namespace (setns) and opens its socket there, and a socket
// stays in the namespace it was made in. That gives a tcp/udp listener and
// an icmp pinger with no netcat or ping dependency, and a matrix of 20
// pairs costs threads, not processes.
//
// Example:
//
//	t, err := lab.LoadTopology("lab/demo.yaml")
//	if err != nil {
//		return err // names the file and the field: "demo.yaml: hosts[1].address: ..."
//	}
//	l, err := lab.Up(ctx, t, lab.Options{BinDir: "bin", Logger: logger})
//	defer lab.Down(context.Background(), t.Name, lab.Options{})
//	if err != nil {
//		return err
//	}
//	ok, err := l.Probe(ctx, "A", "C", lab.ProbeSpec{Proto: "icmp"})
//
// Until serval-node is built (bin/serval-node), hosts run no agent: the lab
// builds everything else, and only same-host traffic (the CNI plugin's /32
// routes and proxy ARP) flows, with no policy.
package lab
