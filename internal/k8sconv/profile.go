package k8sconv

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/servalnet/serval/internal/api"
)

// NamespaceToProfile derives the Profile kns.<namespace> as Calico does:
// the namespace's labels to apply as pcns.<key>, plus
// pcns.projectcalico.org/name (its name, for namespaceSelectors matching a
// namespace by name), and the rules Allow, ingress and egress, that
// endpoints with no policy get.
func NamespaceToProfile(ns *corev1.Namespace) *api.Profile {
	labels := make(map[string]string, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		labels[NamespaceLabelPrefix+k] = v
	}
	labels[NamespaceLabelPrefix+NameLabel] = ns.Name
	return &api.Profile{
		TypeMeta: api.TypeMeta{Kind: "Profile", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{
			Name: NamespaceProfileName(ns.Name),
			// Calico's revision of a derived profile: "<namespace's>/<account's>".
			ResourceVersion:   joinRevisions(ns.ResourceVersion, ""),
			CreationTimestamp: timePtr(ns.CreationTimestamp.Time),
		},
		Spec: api.ProfileSpec{
			Ingress:       []api.Rule{{Action: api.Allow}},
			Egress:        []api.Rule{{Action: api.Allow}},
			LabelsToApply: labels,
		},
	}
}

// ServiceAccountToProfile derives the Profile ksa.<namespace>.<account> as
// Calico does: the account's labels to apply as pcsa.<key>, plus
// pcsa.projectcalico.org/name; no rules.
func ServiceAccountToProfile(sa *corev1.ServiceAccount) *api.Profile {
	labels := make(map[string]string, len(sa.Labels)+1)
	for k, v := range sa.Labels {
		labels[SALabelPrefix+k] = v
	}
	labels[SALabelPrefix+NameLabel] = sa.Name
	ns := sa.Namespace
	if ns == "" {
		ns = "default"
	}
	return &api.Profile{
		TypeMeta: api.TypeMeta{Kind: "Profile", APIVersion: api.APIVersion},
		ObjectMeta: api.ObjectMeta{
			Name:              SAProfileName(ns, sa.Name),
			ResourceVersion:   joinRevisions("", sa.ResourceVersion),
			CreationTimestamp: timePtr(sa.CreationTimestamp.Time),
		},
		Spec: api.ProfileSpec{LabelsToApply: labels},
	}
}

func joinRevisions(nsRev, saRev string) string {
	if nsRev == "" && saRev == "" {
		return ""
	}
	return nsRev + "/" + saRev
}
