package api

// IPReservation lists addresses that IPAM must not hand out on its own
// (automatic assignment). An address in it can still be requested by name,
// as in Calico: reserving is how an operator keeps addresses for workloads
// that ask for them.
type IPReservation struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       IPReservationSpec `json:"spec,omitempty"`
}

// IPReservationSpec is the content of an IPReservation.
type IPReservationSpec struct {
	// ReservedCIDRs are addresses or networks, IPv4 or IPv6.
	ReservedCIDRs []string `json:"reservedCIDRs,omitempty"`
}

func init() {
	Register(KindInfo{
		Kind:       "IPReservation",
		Plural:     "ipreservations",
		ShortNames: []string{"ipreservation", "ipres"},
		New:        func() Resource { return &IPReservation{} },
	})
}

// SetDefaults sets nothing.
func (r *IPReservation) SetDefaults() {}

// Validate checks that every entry is an address or a CIDR.
func (r *IPReservation) Validate() ErrorList {
	var errs ErrorList
	for i, c := range r.Spec.ReservedCIDRs {
		checkCIDR(&errs, Path("spec.reservedCIDRs").Index(i), c)
	}
	return errs
}
