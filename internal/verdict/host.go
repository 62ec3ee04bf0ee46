package verdict

import (
	"net/netip"

	"github.com/servalnet/serval/internal/hoststate"
)

// Host is what one host enforces, as the calculation graph reported it.
type Host struct {
	Sets      map[string]*hoststate.IPSet
	Policies  map[hoststate.PolicyID]hoststate.Policy
	Profiles  map[string]hoststate.Profile
	Workloads map[hoststate.EndpointID]hoststate.WorkloadEndpoint
	HostEPs   map[hoststate.EndpointID]hoststate.HostEndpoint
	Config    hoststate.Config
	InSync    bool
}

// NewHost returns an empty host.
func NewHost() *Host {
	return &Host{
		Sets:      map[string]*hoststate.IPSet{},
		Policies:  map[hoststate.PolicyID]hoststate.Policy{},
		Profiles:  map[string]hoststate.Profile{},
		Workloads: map[hoststate.EndpointID]hoststate.WorkloadEndpoint{},
		HostEPs:   map[hoststate.EndpointID]hoststate.HostEndpoint{},
	}
}

// Recorder is a hoststate.Callbacks that keeps the latest state in Host.
type Recorder struct{ Host *Host }

var _ hoststate.Callbacks = (*Recorder)(nil)

// NewRecorder returns a recorder with an empty host.
func NewRecorder() *Recorder { return &Recorder{Host: NewHost()} }

func (r *Recorder) OnIPSetUpdate(s hoststate.IPSet) {
	c := s
	c.Members = append([]hoststate.IPSetMember(nil), s.Members...)
	r.Host.Sets[s.ID] = &c
}

func (r *Recorder) OnIPSetDelta(id string, added, removed []hoststate.IPSetMember) {
	s := r.Host.Sets[id]
	if s == nil {
		return
	}
	gone := map[hoststate.IPSetMember]bool{}
	for _, m := range removed {
		gone[m] = true
	}
	kept := s.Members[:0]
	for _, m := range s.Members {
		if !gone[m] {
			kept = append(kept, m)
		}
	}
	s.Members = append(kept, added...)
}

func (r *Recorder) OnIPSetRemove(id string)                      { delete(r.Host.Sets, id) }
func (r *Recorder) OnPolicyUpdate(p hoststate.Policy)            { r.Host.Policies[p.ID] = p }
func (r *Recorder) OnPolicyRemove(id hoststate.PolicyID)         { delete(r.Host.Policies, id) }
func (r *Recorder) OnProfileUpdate(p hoststate.Profile)          { r.Host.Profiles[p.Name] = p }
func (r *Recorder) OnProfileRemove(name string)                  { delete(r.Host.Profiles, name) }
func (r *Recorder) OnHostEndpointRemove(id hoststate.EndpointID) { delete(r.Host.HostEPs, id) }
func (r *Recorder) OnWorkloadEndpointRemove(id hoststate.EndpointID) {
	delete(r.Host.Workloads, id)
}
func (r *Recorder) OnWorkloadEndpointUpdate(ep hoststate.WorkloadEndpoint) {
	r.Host.Workloads[ep.ID] = ep
}
func (r *Recorder) OnHostEndpointUpdate(ep hoststate.HostEndpoint) { r.Host.HostEPs[ep.ID] = ep }
func (r *Recorder) OnIPPoolUpdate(string, hoststate.IPPool)        {}
func (r *Recorder) OnIPPoolRemove(string)                          {}
func (r *Recorder) OnLocalBlockUpdate(netip.Prefix)                {}
func (r *Recorder) OnLocalBlockRemove(netip.Prefix)                {}
func (r *Recorder) OnConfigUpdate(cfg hoststate.Config)            { r.Host.Config = cfg }
func (r *Recorder) OnInSync()                                      { r.Host.InSync = true }
