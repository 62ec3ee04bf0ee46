// Package cni is Serval's CNI plugins: "serval", the network plugin
// (cmd/serval), and "serval-ipam", the IPAM plugin (cmd/serval-ipam). Both
// are built on github.com/containernetworking/cni (skel, types 1.0) and
// speak spec versions 0.3.0 to 1.1.0: ADD, DEL, CHECK (0.4.0+), STATUS
// (1.1.0) and VERSION.
//
// ADD, in order, each step undone if a later one fails:
//
//  1. addresses from the IPAM plugin named in ipam.type: any type through
//     CNI delegation (host-local, ...), except that serval-ipam runs inside
//     the serval process (the same code as bin/serval-ipam, which saves a
//     process start and a datastore connection per command; "exec_ipam":
//     true delegates it too). serval-ipam allocates with handle
//     "<network name>.<container ID>", its block writes serialised on the
//     host by a lock file ("ipam_lock_file", default
//     /run/serval/ipam.lock; the reads before them are not), and gives a
//     retried ADD the addresses its handle already holds. It keeps the
//     block of the host's last allocation in "<lock file>.hint", so that
//     the next ADD reads that block with the settings (one round trip
//     less; a wrong hint is only a lost round trip);
//  2. a veth (created while IPAM runs, configured once the addresses are
//     known): host end <prefix><11 hex digits of sha1(identity)> made in
//     the host namespace (MAC ee:ee:ee:ee:ee:ee, proxy_arp, proxy_delay 0,
//     forwarding), the other end made directly inside the workload's
//     namespace as CNI_IFNAME with the address as /32 (/128), a route to
//     169.254.1.1 scope link and the default route via it (IPv6: via
//     fe80::ecee:eeff:feee:eeee, the host end's link-local address);
//  3. a /32 (/128) route on the host to the veth, with route protocol
//     netconst.RouteProtocol (80) so the node agent knows it;
//  4. the WorkloadEndpoint, with labels and profiles from the network
//     configuration ("labels", "profiles"), runtimeConfig (capabilities
//     "labels", "profiles") and CNI_ARGS ("label.<key>=<value>", and the
//     pod's namespace for Kubernetes), written while step 2 configures the
//     veth (the workload end's MAC, which it records, is chosen when the
//     veth is created).
//
// The identity hashed into the veth name is "<namespace>.<pod>" when
// CNI_ARGS carry K8S_POD_NAME (Calico's name for the same pod), else the
// container ID; ".<ifname>" is appended for interfaces other than eth0.
//
// DEL removes the endpoint and the veth and releases the addresses; it
// succeeds when there is nothing to remove or the namespace is gone, and
// leaves alone an endpoint that a newer container of the same pod owns.
//
// Errors reach the runtime as CNI error JSON: 4 bad CNI_ARGS, 7 bad
// network configuration (naming the key), 11 the datastore does not
// answer (try again), 50 STATUS with the datastore down, 100 IPAM, 101
// interfaces and routes, 102 the datastore refused a write, 103 CHECK
// found a difference, 999 other.
//
// Serval's own keys besides Calico's: "datastore_timeout" (seconds per
// datastore request, default 5), "interface_prefix", "exec_ipam",
// "ipam_lock_file", "labels", "profiles".
//
// A network configuration (keys as Calico's):
//
//	{
//	  "cniVersion": "1.1.0", "name": "serval-net", "type": "serval",
//	  "etcd_endpoints": "http://127.0.0.1:2379",
//	  "nodename": "host1", "mtu": 1500, "log_level": "info",
//	  "labels": {"env": "prod"}, "profiles": ["base"],
//	  "capabilities": {"labels": true, "profiles": true},
//	  "ipam": {"type": "serval-ipam", "assign_ipv4": "true", "assign_ipv6": "true",
//	           "ipv4_pools": ["pool-v4"], "ipv6_pools": ["fd00:10::/48"]}
//	}
//
// The commands (main packages) only wire a Plugin or IPAMPlugin to skel:
//
//	p := &cni.Plugin{} // real netlink, etcd and IPAM delegation
//	skel.PluginMainFuncs(p.Funcs(), cni.SupportedVersions, "Serval CNI plugin")
//
// Tests replace the Dataplane, the IPAMDelegate and the datastore.
package cni
