package api

// IPAMConfiguration holds the cluster's IPAM settings. There is one, named
// "default".
type IPAMConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata,omitempty"`
	Spec       IPAMConfigurationSpec `json:"spec,omitempty"`
}

// IPAMConfigurationSpec is the content of the IPAMConfiguration.
type IPAMConfigurationSpec struct {
	// StrictAffinity forbids a host to borrow addresses from another
	// host's blocks (default false).
	StrictAffinity bool `json:"strictAffinity"`
	// MaxBlocksPerHost caps the blocks one host may own; 0 means no limit.
	MaxBlocksPerHost int `json:"maxBlocksPerHost,omitempty"`
	// AutoAllocateBlocks lets hosts claim new blocks on demand (default true).
	AutoAllocateBlocks *bool `json:"autoAllocateBlocks,omitempty"`
	// KubeVirtVMAddressPersistence keeps a KubeVirt VM's address across
	// restarts and migrations: Enabled (Calico's default) or Disabled.
	KubeVirtVMAddressPersistence *string `json:"kubeVirtVMAddressPersistence,omitempty"`
}

// IPAMConfigName is the only name an IPAMConfiguration may have.
const IPAMConfigName = "default"

func init() {
	Register(KindInfo{
		Kind:       "IPAMConfiguration",
		Plural:     "ipamconfigurations",
		ShortNames: []string{"ipamconfiguration", "ipamconfig", "ipamconfigs", "ipamconfigurations"},
		New:        func() Resource { return &IPAMConfiguration{} },
	})
}

// SetDefaults turns on automatic block allocation unless it was set.
func (c *IPAMConfiguration) SetDefaults() {
	if c.Spec.AutoAllocateBlocks == nil {
		c.Spec.AutoAllocateBlocks = ptr(true)
	}
}

// Validate checks the name and the block limit.
func (c *IPAMConfiguration) Validate() ErrorList {
	var errs ErrorList
	if c.Name != "" && c.Name != IPAMConfigName {
		errs.Invalid("metadata.name", c.Name, `is not allowed: the IPAMConfiguration must be named "default"`)
	}
	if c.Spec.MaxBlocksPerHost < 0 {
		errs.Invalid("spec.maxBlocksPerHost", c.Spec.MaxBlocksPerHost, "must not be negative (0 means no limit)")
	}
	if v := c.Spec.KubeVirtVMAddressPersistence; v != nil {
		checkEnum(&errs, "spec.kubeVirtVMAddressPersistence", *v, "Enabled", "Disabled")
	}
	return errs
}
