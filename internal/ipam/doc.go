// Package ipam hands out workload addresses from IP pools in blocks that
// belong to hosts, as Calico's IPAM does, with all state in the datastore.
//
// A pool is cut into blocks of its blockSize (/26 by default). A host
// claims a free block (BlockAffinity, then IPAMBlock, then the affinity
// confirmed) and takes addresses from its own blocks first, so that it
// advertises one route per block rather than one per workload. When its
// blocks are full it claims another (up to IPAMConfiguration
// maxBlocksPerHost), and when no block is free it borrows an address from
// another host's block unless strictAffinity forbids it. Each workload's
// addresses are grouped under a handle (IPAMHandle) so that CNI DEL frees
// them all with one call. Freed addresses go to the back of their block's
// free list: the address freed longest ago is reused first.
//
// There is no lock and no leader: every change is one compare-and-swap
// write of one resource (Create fails if the key exists, Update and Delete
// fail if the resourceVersion moved). Two hosts racing for one block
// collide on its name and one wins; a writer that loses a race reads again
// after a jittered backoff, a bounded number of times.
//
// Usage:
//
//	c := ipam.New(ds, ipam.Config{Logger: log})
//	res, err := c.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "serval-net." + containerID,
//		Node: "host1", Attrs: map[string]string{ipam.AttrNode: "host1", ipam.AttrWorkload: "web-1"}})
//	switch {
//	case errors.Is(err, ipam.ErrPoolsExhausted), errors.Is(err, ipam.ErrBlockLimit): ...
//	}
//	... res.IPv4[0] ...
//	err = c.ReleaseByHandle(ctx, "serval-net."+containerID) // idempotent
//
//	// When a Node is deleted (or now and then, from a controller):
//	err = c.ReleaseNode(ctx, "host1")
//	gone, err := c.ReleaseMissingNodes(ctx)
package ipam
