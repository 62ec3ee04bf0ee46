package dataplane

import "time"

// Periodic resyncs of the dataplane's managers (FelixConfiguration
// nftablesRefreshInterval, routeRefreshInterval, interfaceRefreshInterval):
// each reads its part of the kernel back and repairs what differs. Zero
// disables one; unset keeps the default. The route manager lists the
// routes it owns on every Apply, so its refresh is an Apply; the interface
// refresh sets every workload interface's settings (and the host's
// forwarding switches) again and reads the host's interfaces and
// addresses again (host endpoints by expectedIPs, interfaceExclude).

// Defaults for the route and interface refresh (Calico's).
const (
	defaultRouteRefresh = 90 * time.Second
	defaultIfaceRefresh = 90 * time.Second
)

const (
	refreshNFT = iota
	refreshRoutes
	refreshIfaces
	nRefresh
)

// refresher holds the timers of the periodic resyncs.
type refresher struct {
	d   *Dataplane
	cur [nRefresh]time.Duration
	c   [nRefresh]<-chan time.Time
}

func newRefresher(d *Dataplane) *refresher {
	r := &refresher{d: d}
	for i := range r.cur {
		r.cur[i] = -1 // arm everything on the first update
	}
	r.update()
	return r
}

// intervals are the resync intervals in force: the configuration's, or
// the defaults (the nftables one is Options.ResyncInterval).
func (d *Dataplane) intervals() [nRefresh]time.Duration {
	out := [nRefresh]time.Duration{d.resyncInterval, defaultRouteRefresh, defaultIfaceRefresh}
	for i, p := range []*time.Duration{d.cfg.NftablesRefreshInterval, d.cfg.RouteRefreshInterval, d.cfg.InterfaceRefreshInterval} {
		if p != nil {
			out[i] = max(*p, 0)
		}
	}
	return out
}

// update re-arms the timers whose interval the configuration changed.
func (r *refresher) update() {
	want := r.d.intervals()
	for i := range want {
		if want[i] != r.cur[i] {
			r.cur[i] = want[i]
			r.arm(i)
		}
	}
}

func (r *refresher) arm(i int) {
	if r.cur[i] <= 0 {
		r.c[i] = nil // disabled: never fires
		return
	}
	r.c[i] = r.d.clock.After(r.cur[i])
}

// fired does what timer i is for and re-arms it.
func (r *refresher) fired(i int) {
	switch i {
	case refreshNFT:
		r.d.Resync()
	case refreshIfaces:
		r.d.refreshInterfaces()
	}
	r.arm(i)
}

// refreshInterfaces makes the next Apply set interface settings again and
// read the host's interfaces back.
func (d *Dataplane) refreshInterfaces() {
	if d.ifaces != nil {
		d.ifaces.refresh()
	}
	d.hostIfacesStale = true
}
