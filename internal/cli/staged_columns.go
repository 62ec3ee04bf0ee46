package cli

// The staged policy kinds' table columns, kept here so that get.go's maps
// stay as they are: the stagedAction first, then what the enforced kinds show.
func init() {
	for _, k := range []string{"StagedGlobalNetworkPolicy", "StagedNetworkPolicy"} {
		tableColumns[k] = []column{{"ACTION", "spec.stagedAction"}, {"TIER", "spec.tier"}, {"ORDER", "spec.order"}}
		wideColumns[k] = []column{{"SELECTOR", "spec.selector"}, {"TYPES", "spec.types"}}
	}
	tableColumns["StagedKubernetesNetworkPolicy"] = []column{{"ACTION", "spec.stagedAction"}}
	wideColumns["StagedKubernetesNetworkPolicy"] = []column{{"TYPES", "spec.policyTypes"}}
}
