package k8sconv

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNamespaceToProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		ns   *corev1.Namespace
		want string
	}{
		{"labels as pcns.*, the name, rules Allow", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "shop", ResourceVersion: "42",
			Labels: map[string]string{"team": "retail", "kubernetes.io/metadata.name": "shop"},
		}}, `
kind: Profile
apiVersion: projectcalico.org/v3
metadata: {name: kns.shop, resourceVersion: 42/}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
  labelsToApply:
    pcns.team: retail
    pcns.kubernetes.io/metadata.name: shop
    pcns.projectcalico.org/name: shop
`},
		{"no labels", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, `
kind: Profile
apiVersion: projectcalico.org/v3
metadata: {name: kns.default}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
  labelsToApply: {pcns.projectcalico.org/name: default}
`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkResource(t, NamespaceToProfile(tc.ns), tc.want) })
	}
}

func TestServiceAccountToProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		sa   *corev1.ServiceAccount
		want string
	}{
		{"labels as pcsa.*, the name, no rules", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: "frontend", Namespace: "shop", ResourceVersion: "7", Labels: map[string]string{"tier": "gold"},
		}}, `
kind: Profile
apiVersion: projectcalico.org/v3
metadata: {name: ksa.shop.frontend, resourceVersion: /7}
spec:
  labelsToApply: {pcsa.tier: gold, pcsa.projectcalico.org/name: frontend}
`},
		{"no namespace is default", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, `
kind: Profile
apiVersion: projectcalico.org/v3
metadata: {name: ksa.default.builder}
spec:
  labelsToApply: {pcsa.projectcalico.org/name: builder}
`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkResource(t, ServiceAccountToProfile(tc.sa), tc.want) })
	}
}
