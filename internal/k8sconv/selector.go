package k8sconv

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/api"
)

// labelSelector is s as api's mirror type; nil stays nil.
func labelSelector(s *metav1.LabelSelector) *api.K8sLabelSelector {
	if s == nil {
		return nil
	}
	out := &api.K8sLabelSelector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = make(map[string]string, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			out.MatchLabels[k] = v
		}
	}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, api.K8sLabelSelectorRequirement{
			Key: e.Key, Operator: string(e.Operator), Values: append([]string(nil), e.Values...),
		})
	}
	return out
}

// checkSelector reports what would make s select something it does not
// say: an unknown operator, values where none belong or none where some
// must be, quotes that would break out of the selector's syntax.
func checkSelector(s *metav1.LabelSelector) error {
	if s == nil {
		return nil
	}
	quote := func(v string) bool { return strings.ContainsAny(v, `'"`) }
	for k, v := range s.MatchLabels {
		if k == "" || quote(k) || quote(v) {
			return fmt.Errorf("matchLabels: %q: %q is not a label key and value", k, v)
		}
	}
	for i, e := range s.MatchExpressions {
		if e.Key == "" || quote(e.Key) {
			return fmt.Errorf("matchExpressions[%d]: %q is not a label key", i, e.Key)
		}
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				return fmt.Errorf("matchExpressions[%d]: operator %s needs values", i, e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				return fmt.Errorf("matchExpressions[%d]: operator %s takes no values", i, e.Operator)
			}
		default:
			return fmt.Errorf("matchExpressions[%d]: %q is not an operator (In, NotIn, Exists, DoesNotExist)", i, e.Operator)
		}
		for _, v := range e.Values {
			if quote(v) {
				return fmt.Errorf("matchExpressions[%d]: %q is not a label value", i, v)
			}
		}
	}
	return nil
}

// nsSelector is a namespace selector in Calico's syntax (empty: all()).
func nsSelector(s *metav1.LabelSelector) string {
	return api.K8sSelector(*labelSelector(s))
}

// podSelector is a pod selector in Calico's syntax: the Kubernetes pods
// it selects.
func podSelector(s *metav1.LabelSelector) string {
	return api.K8sPodSelector(labelSelector(s))
}
