package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/ipam"
)

// SupportedVersions are the CNI spec versions both plugins speak. Results
// are produced in 1.0 form and converted for older callers.
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// CommandTimeout bounds one plugin command: a runtime would rather see an
// error than wait forever.
const CommandTimeout = 2 * time.Minute

// IPAMDelegate runs the IPAM plugin named in ipam.type. ExecDelegate is the
// real one (CNI's delegation: the plugin found in CNI_PATH, with the same
// environment and stdin).
type IPAMDelegate interface {
	Add(ctx context.Context, plugin string, stdin []byte) (types.Result, error)
	Del(ctx context.Context, plugin string, stdin []byte) error
	Check(ctx context.Context, plugin string, stdin []byte) error
}

// ExecDelegate runs IPAM plugins as CNI runtimes do.
type ExecDelegate struct{}

// Add runs the plugin's ADD.
func (ExecDelegate) Add(ctx context.Context, plugin string, stdin []byte) (types.Result, error) {
	return invoke.DelegateAdd(ctx, plugin, stdin, nil)
}

// Del runs the plugin's DEL.
func (ExecDelegate) Del(ctx context.Context, plugin string, stdin []byte) error {
	return invoke.DelegateDel(ctx, plugin, stdin, nil)
}

// Check runs the plugin's CHECK.
func (ExecDelegate) Check(ctx context.Context, plugin string, stdin []byte) error {
	return invoke.DelegateCheck(ctx, plugin, stdin, nil)
}

// OpenDatastore opens the etcd datastore the configuration names, and
// refuses datastore_type kubernetes: this package cannot link the
// Kubernetes backend (whose derived kinds use package k8sconv, whose
// tests use this package), so the plugin commands set
// Plugin.OpenDatastore to cniopen.Open, which opens either.
func OpenDatastore(conf *NetConf, log *slog.Logger) (datastore.Interface, error) {
	typ, err := conf.DatastoreTypeOf()
	if err != nil {
		return nil, err
	}
	if typ == datastore.TypeKubernetes {
		return nil, errors.New("datastore_type kubernetes: this build of the plugin has no Kubernetes datastore (set Plugin.OpenDatastore to cniopen.Open)")
	}
	return OpenEtcd(conf, log)
}

// OpenEtcd opens the etcd datastore the configuration names.
func OpenEtcd(conf *NetConf, log *slog.Logger) (datastore.Interface, error) {
	cfg := conf.EtcdConfig()
	cfg.Logger = log
	ds, err := datastore.NewEtcd(cfg)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// Plugin is the "serval" network plugin. Every field may be left zero for
// the real thing; tests replace them. A Plugin serves one command at a
// time (a CNI plugin process runs one).
type Plugin struct {
	// Log, when set, is used instead of the logger the configuration asks
	// for.
	Log *slog.Logger
	// Stdout receives results (os.Stdout when nil); Stderr is where logs
	// go without log_file_path (os.Stderr when nil).
	Stdout, Stderr io.Writer
	// OpenDatastore connects to the datastore (the package's
	// OpenDatastore when nil).
	OpenDatastore func(conf *NetConf, log *slog.Logger) (datastore.Interface, error)
	// IPAM, when set, runs every IPAM plugin (tests). When nil, an
	// ipam.type of "serval-ipam" runs in this process with NewIPAM (see
	// InProcessIPAM) unless the configuration sets exec_ipam, and any
	// other type is run by CNI delegation (ExecDelegate).
	IPAM IPAMDelegate
	// NewIPAM builds the allocator for in-process serval-ipam (nil: always
	// delegate).
	NewIPAM func(ds datastore.Interface, log *slog.Logger) (ipam.Interface, error)
	// Dataplane programs the kernel (a NetlinkDataplane when nil).
	Dataplane Dataplane
	// OpenPods connects to the Kubernetes API in kubernetes mode
	// (NewPodAPI when nil).
	OpenPods func(conf *NetConf, log *slog.Logger) (PodAPI, error)
}

// Funcs returns the plugin's commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status}
}

// call is what every command needs: the decoded configuration, the
// identity, a logger, a datastore and where the endpoint is recorded. In
// kubernetes mode pods is the API the pod is read and annotated through.
type call struct {
	conf      *NetConf
	args      *Args
	id        *Identity
	log       *slog.Logger
	ds        datastore.Interface
	pods      PodAPI
	endpoints endpointStore
	done      func()
}

// openers connect a command to what it talks to; nil fields take the
// real connections.
type openers struct {
	datastore func(*NetConf, *slog.Logger) (datastore.Interface, error)
	pods      func(*NetConf, *slog.Logger) (PodAPI, error)
}

// begin decodes what every command needs. It returns a *types.Error.
func (p *Plugin) begin(a *skel.CmdArgs, plugin string) (*call, error) {
	return begin(a, plugin, p.Log, p.Stderr, openers{p.OpenDatastore, p.OpenPods})
}

func begin(a *skel.CmdArgs, plugin string, log *slog.Logger, stderr io.Writer, open openers) (*call, error) {
	conf, err := LoadNetConf(a.StdinData)
	if err != nil {
		return nil, cniError(plugin, types.ErrInvalidNetworkConfig, err)
	}
	c := &call{conf: conf, done: func() {}}
	if log != nil {
		c.log = log
	} else {
		if stderr == nil {
			stderr = os.Stderr
		}
		c.log, c.done = NewLogger(conf, plugin, stderr)
	}
	c.args, err = ParseArgs(a.Args)
	if err != nil {
		c.done()
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	node, err := conf.NodeName()
	if err != nil {
		c.done()
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	if a.ContainerID != "" {
		c.id = NewIdentity(conf, node, a.ContainerID, a.IfName, c.args)
		c.log = c.log.With("container", a.ContainerID, "endpoint", c.id.EndpointName)
	}
	if open.datastore == nil {
		open.datastore = OpenDatastore
	}
	c.ds, err = open.datastore(conf, c.log)
	if err != nil {
		c.done()
		return nil, cniError("connecting to the datastore", ErrDatastore, err)
	}
	inner := c.done
	c.done = func() { _ = c.ds.Close(); inner() }
	c.endpoints = datastoreEndpoints{c.ds}
	if typ, _ := conf.DatastoreTypeOf(); typ == datastore.TypeKubernetes && a.ContainerID != "" {
		// The endpoint is the pod: without the pod's name there is
		// nothing to derive it from.
		if c.args.PodName == "" || c.args.PodNamespace == "" {
			c.done()
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables,
				"datastore_type kubernetes needs K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS (kubelet passes them)", "")
		}
		if open.pods == nil {
			open.pods = NewPodAPI
		}
		if c.pods, err = open.pods(conf, c.log); err != nil {
			c.done()
			return nil, cniError("connecting to the Kubernetes API", ErrDatastore, err)
		}
		c.endpoints = podEndpoints{c.pods}
	}
	return c, nil
}

func (p *Plugin) dataplane(log *slog.Logger) Dataplane {
	if p.Dataplane != nil {
		return p.Dataplane
	}
	return &NetlinkDataplane{Log: log}
}

// ServalIPAMType is the ipam.type of Serval's IPAM plugin.
const ServalIPAMType = "serval-ipam"

// ipamFor picks how this call runs its IPAM plugin.
func (p *Plugin) ipamFor(c *call, a *skel.CmdArgs) IPAMDelegate {
	if p.IPAM != nil {
		return p.IPAM
	}
	if c.conf.IPAM.Type == ServalIPAMType && p.NewIPAM != nil && !c.conf.ExecIPAM {
		return &InProcessIPAM{Args: a, Plugin: &IPAMPlugin{Log: c.log, NewIPAM: p.NewIPAM,
			OpenDatastore: func(*NetConf, *slog.Logger) (datastore.Interface, error) { return sharedStore{c.ds}, nil },
			OpenPods:      func(*NetConf, *slog.Logger) (PodAPI, error) { return c.pods, nil }}}
	}
	return ExecDelegate{}
}

// InProcessIPAM runs serval-ipam's commands in the calling process, with
// the same arguments and configuration a delegated run would get. It
// saves starting a second process and a second datastore connection per
// command: most of an ADD's time on a busy host (see bench/README.md).
type InProcessIPAM struct {
	Plugin *IPAMPlugin
	Args   *skel.CmdArgs // the command's own arguments
}

func (d *InProcessIPAM) run(f func(*skel.CmdArgs) error, stdin []byte) error {
	a := *d.Args
	a.StdinData = stdin
	return f(&a)
}

// Add runs serval-ipam's ADD and returns its result.
func (d *InProcessIPAM) Add(_ context.Context, _ string, stdin []byte) (types.Result, error) {
	var out bytes.Buffer
	d.Plugin.Stdout = &out
	if err := d.run(d.Plugin.Add, stdin); err != nil {
		return nil, err
	}
	// The result is in the configuration's version, as a delegated
	// plugin's would be.
	v, err := (&version.ConfigDecoder{}).Decode(stdin)
	if err != nil {
		return nil, err
	}
	return version.NewResult(v, out.Bytes())
}

// Del runs serval-ipam's DEL.
func (d *InProcessIPAM) Del(_ context.Context, _ string, stdin []byte) error {
	return d.run(d.Plugin.Del, stdin)
}

// Check runs serval-ipam's CHECK.
func (d *InProcessIPAM) Check(_ context.Context, _ string, stdin []byte) error {
	return d.run(d.Plugin.Check, stdin)
}

// sharedStore lends the command's datastore connection to in-process IPAM,
// which must not close it.
type sharedStore struct{ datastore.Interface }

func (sharedStore) Close() error { return nil }

func (p *Plugin) stdout() io.Writer {
	if p.Stdout != nil {
		return p.Stdout
	}
	return os.Stdout
}

// Add attaches a workload: addresses from the IPAM plugin, the veth and
// routes, then the WorkloadEndpoint. A failure at any step undoes the
// steps before it.
func (p *Plugin) Add(a *skel.CmdArgs) error {
	c, err := p.begin(a, "serval")
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	start := time.Now()
	log := c.log

	wep := c.id.Endpoint(c.conf, c.args)
	if err := api.Validate(wep); err != nil {
		// The configuration's labels and profiles were checked already, so
		// what is left comes from the runtime's arguments.
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("the workload's identity does not make a valid WorkloadEndpoint: %v", err), "")
	}
	dp := p.dataplane(log)
	mtu := workloadMTU(c.conf, dp, log)

	var undo undoStack
	ipamType := c.conf.IPAM.Type
	ipamDel := p.ipamFor(c, a)
	spec := &LinkSpec{HostVeth: c.id.HostVeth, IfName: a.IfName, Netns: a.Netns, MTU: mtu}
	tIPAM := time.Now()
	// The veth does not depend on the addresses: create it while IPAM
	// talks to the datastore, and configure it once they are known.
	var linkErr error
	var linkDone chan struct{}
	if lc, ok := dp.(LinkCreator); ok {
		linkDone = make(chan struct{})
		go func() {
			defer close(linkDone)
			linkErr = lc.CreateLink(spec)
		}()
	}
	raw, err := ipamDel.Add(ctx, ipamType, a.StdinData)
	if linkDone != nil {
		<-linkDone
		if linkErr == nil {
			spec.Created = true
			undo.push("removing veth "+spec.HostVeth, func() error { return dp.Teardown(spec.HostVeth) })
		}
	}
	if err != nil {
		return failAdd(&undo, cniError("allocating addresses with IPAM plugin "+ipamType, ErrIPAM, err))
	}
	// From here on the IPAM plugin holds addresses for this container.
	undo.push("releasing the addresses (IPAM plugin "+ipamType+" DEL)", func() error {
		return ipamDel.Del(ctx, ipamType, a.StdinData)
	})
	ipamRes, err := current.NewResultFromResult(raw)
	if err != nil {
		return failAdd(&undo, cniError("reading the result of IPAM plugin "+ipamType, ErrIPAM, err))
	}
	var addrs []netip.Addr
	for _, ipc := range ipamRes.IPs {
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return failAdd(&undo, types.NewError(ErrIPAM, fmt.Sprintf("IPAM plugin %s returned a bad address %v", ipamType, ipc.Address.IP), ""))
		}
		addrs = append(addrs, addr.Unmap())
	}
	if len(addrs) == 0 {
		return failAdd(&undo, types.NewError(ErrIPAM, fmt.Sprintf("IPAM plugin %s returned no address", ipamType), ""))
	}
	addrs = sortedAddrs(addrs)
	log.Debug("addresses allocated", "addresses", addrs)
	if linkErr != nil {
		return failAdd(&undo, cniError("setting up the workload's interface", ErrDataplane, linkErr))
	}

	spec.Addrs = addrs
	for _, ad := range addrs {
		wep.Spec.IPNetworks = append(wep.Spec.IPNetworks, netip.PrefixFrom(ad, ad.BitLen()).String())
	}
	var created bool // this ADD created the endpoint (rather than replaced one)
	undoEndpoint := func() {
		if created {
			undo.push("removing "+c.endpoints.describe(c.id), func() error { return c.endpoints.remove(ctx, c.id, "") })
		}
	}
	// The endpoint records the workload's MAC address. When creating the
	// veth chose it, the endpoint is written (a datastore round trip)
	// while Setup configures the veth (netlink), and a failure of either
	// undoes both.
	var epErr error
	var epDone chan struct{}
	if spec.Created && spec.ContainerMAC != "" {
		wep.Spec.MAC = spec.ContainerMAC
		epDone = make(chan struct{})
		go func() {
			defer close(epDone)
			created, epErr = c.endpoints.write(ctx, c.id, wep)
		}()
	}
	tDP := time.Now()
	info, err := dp.Setup(spec)
	tDS := time.Now()
	if epDone != nil {
		<-epDone
		undoEndpoint()
	}
	if err != nil {
		return failAdd(&undo, cniError("setting up the workload's interface", ErrDataplane, err))
	}
	if !spec.Created {
		undo.push("removing veth "+spec.HostVeth, func() error { return dp.Teardown(spec.HostVeth) })
	}
	if epDone == nil || (epErr == nil && wep.Spec.MAC != info.ContainerMAC) {
		// Written only now, or again with the MAC the veth really has.
		wep.Spec.MAC = info.ContainerMAC
		var again bool
		again, epErr = c.endpoints.write(ctx, c.id, wep)
		if again && !created {
			created = true
			undoEndpoint()
		}
	}
	if epErr != nil {
		return failAdd(&undo, cniError("writing "+c.endpoints.describe(c.id), ErrDatastore, epErr))
	}

	res := buildResult(c.conf, a, spec, info, ipamRes)
	out, err := res.GetAsVersion(c.conf.CNIVersion)
	if err != nil {
		return failAdd(&undo, types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("converting the result to version %s: %v", c.conf.CNIVersion, err), ""))
	}
	if err := out.PrintTo(p.stdout()); err != nil {
		return failAdd(&undo, types.NewError(types.ErrIOFailure, fmt.Sprintf("writing the result: %v", err), ""))
	}
	log.Info("workload attached", "interface", spec.HostVeth, "addresses", addrs, "mtu", mtu, "took", time.Since(start),
		"ipam", tDP.Sub(tIPAM), "dataplane", tDS.Sub(tDP), "endpoint", time.Since(tDS))
	return nil
}

// buildResult is the CNI result: the host veth, the workload interface, its
// addresses and its default routes.
func buildResult(conf *NetConf, a *skel.CmdArgs, spec *LinkSpec, info *LinkInfo, ipamRes *current.Result) *current.Result {
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: spec.HostVeth, Mac: info.HostMAC},
			{Name: spec.IfName, Mac: info.ContainerMAC, Sandbox: a.Netns, Mtu: spec.MTU},
		},
		DNS: conf.DNS,
	}
	if len(ipamRes.DNS.Nameservers) > 0 {
		res.DNS = ipamRes.DNS
	}
	one := 1
	for _, ad := range spec.Addrs {
		ipc := &current.IPConfig{Interface: &one, Address: *hostPrefix(ad)}
		if ad.Is4() {
			ipc.Gateway = gatewayV4
		} else {
			ipc.Gateway = gatewayV6
		}
		res.IPs = append(res.IPs, ipc)
	}
	if hasV4(spec.Addrs) {
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gatewayV4})
	}
	if hasV6(spec.Addrs) {
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: gatewayV6})
	}
	return res
}

// Del detaches a workload. It is idempotent: it succeeds when there is
// nothing left to remove, and when the workload's namespace is gone. Every
// step is tried even when one fails, and the first failure is reported so
// that the runtime retries.
func (p *Plugin) Del(a *skel.CmdArgs) error {
	c, err := p.begin(a, "serval")
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()

	// A DEL for an older container of the same pod must not remove the
	// interface and endpoint of the one that replaced it: the endpoint
	// records which container it belongs to.
	start := time.Now()
	var errs []*types.Error
	owner := a.ContainerID // the container the endpoint and veth belong to, "" when unknown
	ep, err := c.endpoints.owner(ctx, c.id)
	switch {
	case err != nil:
		owner = ""
		errs = append(errs, cniError("finding the endpoint", ErrDatastore, err))
	case ep.found && ep.container != "":
		owner = ep.container
	}
	if owner != a.ContainerID && owner != "" {
		c.log.Info("endpoint belongs to another container: leaving it and its interface", "owner", owner)
	}
	// A plain container's veth is named after the container, so it is
	// always this DEL's to remove; a pod's is shared by the pod's
	// successive containers, so it is removed only when the endpoint says
	// it is ours (or there is no endpoint).
	removeVeth := owner == a.ContainerID || (owner == "" && c.id.Orchestrator != OrchestratorK8s)

	// Removing a veth waits for the kernel's RCU grace periods (10-20 ms);
	// the datastore work does not depend on it, so both run at once.
	vethDone := make(chan error, 1)
	go func() {
		if !removeVeth {
			vethDone <- nil
			return
		}
		vethDone <- p.dataplane(c.log).Teardown(c.id.HostVeth)
	}()
	tDS := time.Now()
	if owner == a.ContainerID && err == nil && ep.found {
		if err := c.endpoints.remove(ctx, c.id, ep.version); err != nil {
			errs = append(errs, cniError("removing the endpoint", ErrDatastore, err))
		}
	}
	tIPAM := time.Now()
	if err := p.ipamFor(c, a).Del(ctx, c.conf.IPAM.Type, a.StdinData); err != nil {
		errs = append(errs, cniError("releasing addresses with IPAM plugin "+c.conf.IPAM.Type, ErrIPAM, err))
	}
	tVeth := time.Now()
	if err := <-vethDone; err != nil {
		errs = append(errs, cniError("removing the workload's interface", ErrDataplane, err))
	}
	if len(errs) > 0 {
		e := errs[0]
		for _, more := range errs[1:] {
			e.Msg += "; " + more.Msg
		}
		return e
	}
	c.log.Info("workload detached", "interface", c.id.HostVeth, "took", time.Since(start),
		"endpoint", tIPAM.Sub(tDS), "ipam", tVeth.Sub(tIPAM), "waiting for veth removal", time.Since(tVeth))
	return nil
}

// Check verifies that the attachment is as ADD left it: the interfaces,
// addresses and routes in the result (prevResult), the host side, the
// endpoint, and (through its CHECK) the IPAM plugin's view.
func (p *Plugin) Check(a *skel.CmdArgs) error {
	c, err := p.begin(a, "serval")
	if err != nil {
		return err
	}
	defer c.done()
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()

	pc := &types.PluginConf{}
	if err := json.Unmarshal(a.StdinData, pc); err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	if pc.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid network configuration: prevResult: is required for CHECK", "")
	}
	if err := version.ParsePrevResult(pc); err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("reading prevResult: %v", err), "")
	}
	prev, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("reading prevResult: %v", err), "")
	}
	spec := &LinkSpec{HostVeth: c.id.HostVeth, IfName: a.IfName, Netns: a.Netns}
	foundIf := false
	for _, itf := range prev.Interfaces {
		foundIf = foundIf || (itf.Name == a.IfName && itf.Sandbox != "")
	}
	if !foundIf {
		return types.NewError(ErrCheckFailed, fmt.Sprintf("prevResult has no interface %s in a sandbox", a.IfName), "")
	}
	for _, ipc := range prev.IPs {
		if ad, ok := netip.AddrFromSlice(ipc.Address.IP); ok {
			spec.Addrs = append(spec.Addrs, ad.Unmap())
		}
	}
	if err := p.dataplane(c.log).Check(spec); err != nil {
		return types.NewError(ErrCheckFailed, "the workload's interface is not as ADD made it: "+err.Error(), "")
	}
	ep, err := c.endpoints.owner(ctx, c.id)
	if err != nil {
		return cniError("finding the endpoint", ErrCheckFailed, err)
	}
	// A pod's endpoint names no interface: it is derived from the pod.
	if !ep.found || ep.container != a.ContainerID || (ep.iface != "" && ep.iface != c.id.HostVeth) {
		return types.NewError(ErrCheckFailed, fmt.Sprintf("%s does not describe this container's interface %s", c.endpoints.describe(c.id), c.id.HostVeth), "")
	}
	if err := p.ipamFor(c, a).Check(ctx, c.conf.IPAM.Type, a.StdinData); err != nil {
		return cniError("IPAM plugin "+c.conf.IPAM.Type+" CHECK", ErrCheckFailed, err)
	}
	return nil
}

// Status says whether the plugin can attach workloads: whether the
// datastore answers (error 50, "plugin not available", when it does not).
func (p *Plugin) Status(a *skel.CmdArgs) error {
	c, err := p.begin(a, "serval")
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

// checkDatastore asks the datastore something that needs it to be up.
func checkDatastore(ctx context.Context, ds datastore.Interface) error {
	if ch, ok := ds.(interface{ Check(context.Context) error }); ok {
		return ch.Check(ctx)
	}
	_, err := ds.List(ctx, datastore.ListOptions{Kind: "IPPool"})
	return err
}
