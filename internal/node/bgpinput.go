package node

import (
	"net/netip"
	"slices"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// record takes one update into the loop's view (b.mu held) and says
// whether it changed anything BGP computes from. Endpoints and affinities
// are reduced at once to what this host's BGP needs (its blocks, its
// endpoints' addresses); those of other hosts are dropped, without a
// recomputation. A resource that moved away from this host (or was
// deleted) takes its contribution with it.
func (b *bgpLoop) record(u datastore.Update) bool {
	switch u.Key.Kind {
	case "WorkloadEndpoint":
		var addrs []netip.Addr
		var fl floatingAddrs
		if w, ok := u.Object.(*api.WorkloadEndpoint); ok && u.Type != datastore.Deleted && w.Spec.Node == b.node {
			addrs = localAddrs(w)
			fl = floatingAddrs{addrs: floatingIPs(w), openstack: w.Spec.Orchestrator == "openstack"}
		}
		oldFl, hadFl := b.floating[u.Key]
		if fl.addrs == nil {
			delete(b.floating, u.Key)
		} else {
			b.floating[u.Key] = fl
		}
		flChanged := hadFl != (fl.addrs != nil) || oldFl.openstack != fl.openstack || !slices.Equal(oldFl.addrs, fl.addrs)
		old, had := b.addrs[u.Key]
		if addrs == nil {
			delete(b.addrs, u.Key)
			return had || flChanged
		}
		b.addrs[u.Key] = addrs
		return !had || !slices.Equal(old, addrs) || flChanged
	case "BlockAffinity":
		var block netip.Prefix
		if a, ok := u.Object.(*api.BlockAffinity); ok && u.Type != datastore.Deleted &&
			a.Spec.Node == b.node && a.Spec.State == api.AffinityConfirmed {
			if p, err := netip.ParsePrefix(a.Spec.CIDR); err == nil {
				block = p.Masked()
			}
		}
		old, had := b.blocks[u.Key]
		if !block.IsValid() {
			delete(b.blocks, u.Key)
			return had
		}
		b.blocks[u.Key] = block
		return !had || old != block
	}
	if u.Type == datastore.Deleted {
		delete(b.objects, u.Key)
	} else {
		b.objects[u.Key] = u.Object
	}
	return true
}

// localAddrs are the single addresses of an endpoint (its /32s and
// /128s), sorted.
func localAddrs(w *api.WorkloadEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, n := range w.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(n); err == nil && p.IsSingleIP() {
			out = append(out, p.Addr().Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// floatingIPs are the external addresses of an endpoint's ipNATs, sorted.
func floatingIPs(w *api.WorkloadEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, nat := range w.Spec.IPNATs {
		if a, err := netip.ParseAddr(nat.ExternalIP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
