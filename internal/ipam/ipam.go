package ipam

import (
	"context"
	"net/netip"
)

// Attribute keys stored with every allocation, so that `servalctl ipam`
// can say who holds an address.
const (
	AttrNode      = "node"
	AttrNamespace = "namespace"
	AttrWorkload  = "workload" // pod or container name
	AttrEndpoint  = "endpoint" // WorkloadEndpoint name
)

// Interface is IPAM as the CNI plugin and the node agent use it. The
// implementation (Client) keeps all state in the datastore and is safe for
// concurrent use by many processes on many hosts.
type Interface interface {
	// AutoAssign allocates Num4 IPv4 and Num6 IPv6 addresses for one
	// handle (one per workload) on one host.
	AutoAssign(ctx context.Context, args AutoAssignArgs) (*AssignResult, error)
	// AssignIP allocates one requested address.
	AssignIP(ctx context.Context, args AssignIPArgs) error
	// ReleaseByHandle frees every address of a handle. Releasing a handle
	// that holds nothing is not an error (CNI DEL must be idempotent).
	ReleaseByHandle(ctx context.Context, handle string) error
	// ReleaseIPs frees the given addresses and returns those that were not
	// allocated.
	ReleaseIPs(ctx context.Context, ips ...netip.Addr) (notAllocated []netip.Addr, err error)
	// IPsByHandle lists the addresses a handle holds.
	IPsByHandle(ctx context.Context, handle string) ([]netip.Addr, error)
}

// AutoAssignArgs says what to allocate, for whom and from where.
type AutoAssignArgs struct {
	Num4, Num6 int
	Handle     string
	Node       string // the host the workload runs on; its blocks are used first
	Attrs      map[string]string
	// IPv4Pools / IPv6Pools restrict allocation to these pools (names or
	// CIDRs). Empty: every enabled pool whose nodeSelector matches the node.
	IPv4Pools, IPv6Pools []string
	// Lock, when set, is taken before any block or handle is written and
	// released when AutoAssign returns: a host-wide lock (the CNI
	// plugin's) that stops this host's concurrent requests racing for the
	// same block, held only for the writes that need it. It is taken once
	// the pools and settings are read, or, when the client has a hint for
	// the family asked for (Client.SetHint), before they are read with the
	// hinted block, so that the block read is not stale when written.
	Lock func() (unlock func())
	// TryLock, when set with Lock, takes the same lock only if it is free
	// (ok false: it was not taken). With a hint, the lock is taken before
	// the settings are read only when it is free: while another request
	// of the host holds it, this one reads the settings meanwhile, as
	// without a hint, rather than queue for the lock first and hold it
	// for its reads too.
	TryLock func() (unlock func(), ok bool)
	// ReuseHandle: when the handle already holds an address of every
	// family asked for (a retried CNI ADD of the same attachment), return
	// those instead of allocating more. The handle is read together with
	// the settings (or, with a hint, created with them: a handle that
	// exists already is then read after), so a new handle costs no extra
	// round trip.
	ReuseHandle bool
}

// AssignResult holds the addresses allocated, as host addresses (/32, /128).
type AssignResult struct {
	IPv4, IPv6 []netip.Addr
	// Reused says that the addresses are those the handle already held
	// (AutoAssignArgs.ReuseHandle).
	Reused bool
}

// AssignIPArgs asks for one specific address.
type AssignIPArgs struct {
	IP     netip.Addr
	Handle string
	Node   string
	Attrs  map[string]string
}
