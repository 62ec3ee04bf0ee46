package ipam

import (
	"errors"
	"fmt"

	"github.com/servalnet/serval/internal/api"
)

// Errors callers test with errors.Is. Each is returned wrapped with what
// was asked and why it failed, e.g.
//
//	allocating 1 IPv4 address for handle "net.c1" on node "host1": pools exhausted: no free address in pool "pool-a" (10.65.0.0/24)
var (
	// ErrPoolsExhausted: every usable pool is full (or the rest is
	// reserved, or held in other hosts' blocks under strictAffinity).
	ErrPoolsExhausted = errors.New("pools exhausted")
	// ErrBlockLimit: the host owns IPAMConfiguration maxBlocksPerHost
	// blocks already and may not borrow (or found nothing to borrow).
	ErrBlockLimit = errors.New("block limit reached")
	// ErrNotInPool: a requested address is in no enabled IP pool.
	ErrNotInPool = errors.New("address is not in any enabled IP pool")
	// ErrInUse: a requested address is held by another handle.
	ErrInUse = errors.New("address already in use")
	// ErrNoPool: no pool may be used: none exists for the address family,
	// none selects the node, or a requested pool does not exist or is
	// disabled.
	ErrNoPool = errors.New("no usable IP pool")
	// ErrInvalidArgument: the request itself is malformed.
	ErrInvalidArgument = errors.New("invalid argument")
)

// errTaken is internal: another host won the race for a block; the
// claimer picks another.
var errTaken = errors.New("block claimed by another host")

func errUnexpectedKind(r api.Resource) error {
	return fmt.Errorf("datastore returned %T, not the kind asked for", r)
}
