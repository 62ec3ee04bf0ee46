package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
)

// IPAMPlugin is the "serval-ipam" IPAM plugin: addresses from Serval's
// pools, one handle per attachment (network name + "." + container ID).
// It works under the serval plugin and under any other CNI plugin (bridge,
// ptp, ...). Fields may be left zero except NewIPAM.
type IPAMPlugin struct {
	Log            *slog.Logger
	Stdout, Stderr io.Writer
	OpenDatastore  func(conf *NetConf, log *slog.Logger) (datastore.Interface, error)
	// NewIPAM builds the allocator over the datastore (required).
	NewIPAM func(ds datastore.Interface, log *slog.Logger) (ipam.Interface, error)
	// OpenPods connects to the Kubernetes API in kubernetes mode
	// (NewPodAPI when nil).
	OpenPods func(conf *NetConf, log *slog.Logger) (PodAPI, error)
}

// Funcs returns the plugin's commands for skel.PluginMainFuncs.
func (p *IPAMPlugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status}
}

func (p *IPAMPlugin) begin(a *skel.CmdArgs) (*call, ipam.Interface, error) {
	c, err := begin(a, "serval-ipam", p.Log, p.Stderr, openers{p.OpenDatastore, p.OpenPods})
	if err != nil {
		return nil, nil, err
	}
	if p.NewIPAM == nil {
		c.done()
		return nil, nil, types.NewError(types.ErrInternal, "serval-ipam was built without an IPAM implementation", "")
	}
	im, err := p.NewIPAM(c.ds, c.log)
	if err != nil {
		c.done()
		return nil, nil, cniError("starting IPAM", ErrIPAM, err)
	}
	return c, im, nil
}

// Add allocates the attachment's addresses: those asked for (CNI_ARGS
// IP=, or runtimeConfig "ips"), else one IPv4 (assign_ipv4) and/or one
// IPv6 (assign_ipv6) address from the configured pools.
func (p *IPAMPlugin) Add(a *skel.CmdArgs) error {
	c, im, err := p.begin(a)
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()

	// The host's IPAM lock is held only around the block writes: reading
	// the handle, the pools and the node's affinities needs no lock, and
	// holding it for them would make concurrent ADDs on a host wait for
	// each other's reads too.
	lock := func() func() { return lockIPAM(c.conf.IPAMLockFile, c.log) }
	tryLock := func() (func(), bool) { return tryLockIPAM(c.conf.IPAMLockFile, c.log) }
	requested := append([]netip.Addr(nil), c.args.IPs...)
	for _, s := range c.conf.RuntimeConfig.IPs {
		ad, _ := parseAddr(s) // checked by LoadNetConf
		requested = append(requested, ad)
	}
	ipv4Pools, ipv6Pools := c.conf.IPAM.IPv4Pools, c.conf.IPAM.IPv6Pools
	if c.pods != nil {
		req, err := readPodIPAMRequest(ctx, c.pods, c.id.Namespace, c.id.Pod)
		if err != nil {
			return cniError("reading the pod's IPAM annotations", types.ErrInvalidEnvironmentVariables, err)
		}
		requested = append(requested, req.IPs...)
		if req.IPv4Pools != nil {
			ipv4Pools = req.IPv4Pools
		}
		if req.IPv6Pools != nil {
			ipv6Pools = req.IPv6Pools
		}
	}
	var addrs []netip.Addr
	if len(requested) > 0 {
		defer lock()()
		for _, ad := range requested {
			err := im.AssignIP(ctx, ipam.AssignIPArgs{IP: ad, Handle: c.id.Handle, Node: c.id.Node, Attrs: c.id.IPAMAttrs()})
			if err != nil {
				e := cniError(fmt.Sprintf("assigning requested address %s to handle %s on node %s", ad, c.id.Handle, c.id.Node), ErrIPAM, err)
				return p.releaseAfter(ctx, im, c, e)
			}
			addrs = append(addrs, ad)
		}
	} else {
		// ReuseHandle: a retried ADD of the same attachment gets the
		// addresses it was given the first time rather than a second set.
		args := ipam.AutoAssignArgs{
			Handle: c.id.Handle, Node: c.id.Node, Attrs: c.id.IPAMAttrs(),
			IPv4Pools: ipv4Pools, IPv6Pools: ipv6Pools,
			Lock: lock, TryLock: tryLock, ReuseHandle: true,
		}
		if c.conf.IPAM.WantIPv4() {
			args.Num4 = 1
		}
		if c.conf.IPAM.WantIPv6() {
			args.Num6 = 1
		}
		hints := hintFile(c.conf.IPAMLockFile)
		loaded := loadHints(im, hints, c.id.Node)
		res, err := im.AutoAssign(ctx, args)
		if err == nil {
			saveHints(im, hints, c.id.Node, loaded, c.log)
		}
		if err != nil {
			e := cniError(fmt.Sprintf("allocating %s for handle %s on node %s", describeWant(args), c.id.Handle, c.id.Node), ErrIPAM, err)
			return p.releaseAfter(ctx, im, c, e)
		}
		if len(res.IPv4) < args.Num4 || len(res.IPv6) < args.Num6 {
			e := types.NewError(ErrIPAM, fmt.Sprintf("allocating %s for handle %s on node %s: got only %d IPv4 and %d IPv6 (pools exhausted?)",
				describeWant(args), c.id.Handle, c.id.Node, len(res.IPv4), len(res.IPv6)), "")
			return p.releaseAfter(ctx, im, c, e)
		}
		if res.Reused {
			c.log.Info("reusing the handle's addresses", "handle", c.id.Handle, "ipv4", res.IPv4, "ipv6", res.IPv6)
		}
		addrs = append(append(addrs, res.IPv4...), res.IPv6...)
	}

	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: c.conf.DNS}
	for _, ad := range sortedAddrs(addrs) {
		result.IPs = append(result.IPs, &current.IPConfig{Address: *hostPrefix(ad)})
	}
	out, err := result.GetAsVersion(c.conf.CNIVersion)
	if err == nil {
		w := p.Stdout
		if w == nil {
			w = os.Stdout
		}
		err = out.PrintTo(w)
	}
	if err != nil {
		return p.releaseAfter(ctx, im, c, types.NewError(types.ErrIOFailure, fmt.Sprintf("writing the result: %v", err), ""))
	}
	c.log.Info("addresses allocated", "handle", c.id.Handle, "addresses", addrs)
	return nil
}

func describeWant(a ipam.AutoAssignArgs) string {
	var parts []string
	if a.Num4 > 0 {
		s := fmt.Sprintf("%d IPv4 address", a.Num4)
		if len(a.IPv4Pools) > 0 {
			s += " from " + strings.Join(a.IPv4Pools, ", ")
		}
		parts = append(parts, s)
	}
	if a.Num6 > 0 {
		s := fmt.Sprintf("%d IPv6 address", a.Num6)
		if len(a.IPv6Pools) > 0 {
			s += " from " + strings.Join(a.IPv6Pools, ", ")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " and ")
}

// releaseAfter frees whatever the handle holds after a failed ADD, so that
// a partial allocation (the IPv4 address but not the IPv6 one) is not left
// behind.
func (p *IPAMPlugin) releaseAfter(ctx context.Context, im ipam.Interface, c *call, e *types.Error) error {
	if err := im.ReleaseByHandle(ctx, c.id.Handle); err != nil {
		e.Msg += fmt.Sprintf(" (and releasing handle %s failed: %v)", c.id.Handle, err)
	}
	return e
}

// Del releases every address of the attachment's handle. Releasing a
// handle that holds nothing succeeds.
func (p *IPAMPlugin) Del(a *skel.CmdArgs) error {
	c, im, err := p.begin(a)
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	defer lockIPAM(c.conf.IPAMLockFile, c.log)()
	if err := im.ReleaseByHandle(ctx, c.id.Handle); err != nil {
		return cniError("releasing handle "+c.id.Handle, ErrIPAM, err)
	}
	c.log.Info("addresses released", "handle", c.id.Handle)
	return nil
}

// Check verifies that the handle holds the addresses of prevResult (or, if
// there is none, at least one address).
func (p *IPAMPlugin) Check(a *skel.CmdArgs) error {
	c, im, err := p.begin(a)
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	held, err := im.IPsByHandle(ctx, c.id.Handle)
	if err != nil {
		return cniError("listing the addresses of handle "+c.id.Handle, ErrCheckFailed, err)
	}
	if len(held) == 0 {
		return types.NewError(ErrCheckFailed, fmt.Sprintf("handle %s holds no address", c.id.Handle), "")
	}
	pc := &types.PluginConf{}
	if err := json.Unmarshal(a.StdinData, pc); err != nil || pc.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(pc); err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("reading prevResult: %v", err), "")
	}
	prev, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("reading prevResult: %v", err), "")
	}
	holds := map[netip.Addr]bool{}
	for _, h := range held {
		holds[h] = true
	}
	for _, ipc := range prev.IPs {
		ad, _ := netip.AddrFromSlice(ipc.Address.IP)
		if !holds[ad.Unmap()] {
			return types.NewError(ErrCheckFailed, fmt.Sprintf("address %s of the result is not allocated to handle %s (it holds %v)", ad.Unmap(), c.id.Handle, held), "")
		}
	}
	return nil
}

// Status reports whether the datastore answers (error 50 if not).
func (p *IPAMPlugin) Status(a *skel.CmdArgs) error {
	c, err := begin(a, "serval-ipam", p.Log, p.Stderr, openers{p.OpenDatastore, p.OpenPods})
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	if err := checkDatastore(ctx, c.ds); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("the datastore does not answer: %v", err), "")
	}
	return nil
}
