package kubernetes

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// A Pod as the API server sends it carries much that no WorkloadEndpoint
// needs: managedFields, volumes (every pod has a projected service-account
// token), environment, resources, tolerations, conditions. Decoded whole,
// a pod costs more to read than to convert, and all of it is garbage a
// moment later. slimPod reads only the fields k8sconv.PodToWorkloadEndpoint
// and the deriver use, from the protobuf message, and skips the rest
// unread. Field numbers are those of k8s.io/api's and k8s.io/apimachinery's
// generated.proto (stable: protobuf field numbers are never reused). The
// test compares every conversion with that of the whole Pod.

// slimPod decodes a Pod's own message (no envelope).
func slimPod(msg []byte) (runtime.Object, error) {
	pod := &corev1.Pod{}
	err := protoFields(msg, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1:
			return slimObjectMeta(v, &pod.ObjectMeta)
		case 2:
			return slimPodSpec(v, &pod.Spec)
		case 3:
			return slimPodStatus(v, &pod.Status)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding a Pod: %w", err)
	}
	return pod, nil
}

func slimObjectMeta(msg []byte, m *metav1.ObjectMeta) error {
	return protoFields(msg, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1:
			m.Name = string(v)
		case 2:
			m.GenerateName = string(v)
		case 3:
			m.Namespace = string(v)
		case 5:
			m.UID = types.UID(v)
		case 6:
			m.ResourceVersion = string(v)
		case 8:
			return m.CreationTimestamp.Unmarshal(v)
		case 9:
			if m.DeletionTimestamp == nil {
				m.DeletionTimestamp = &metav1.Time{}
			}
			return m.DeletionTimestamp.Unmarshal(v)
		case 11:
			return slimMapEntry(v, &m.Labels)
		case 12:
			return slimMapEntry(v, &m.Annotations)
		}
		return nil
	})
}

// slimMapEntry adds one entry of a map<string, string> (a message of key
// 1 and value 2).
func slimMapEntry(msg []byte, m *map[string]string) error {
	var k, val string
	err := protoFields(msg, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1:
			k = string(v)
		case 2:
			val = string(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = val
	return nil
}

func slimPodSpec(msg []byte, s *corev1.PodSpec) error {
	return protoFields(msg, func(num protowire.Number, v []byte, n uint64) error {
		switch num {
		case 2:
			return slimContainer(v, &s.Containers)
		case 8:
			s.ServiceAccountName = string(v)
		case 10:
			s.NodeName = string(v)
		case 11:
			s.HostNetwork = n != 0
		case 20:
			return slimContainer(v, &s.InitContainers)
		}
		return nil
	})
}

// slimContainer adds a container with its name and ports.
func slimContainer(msg []byte, cs *[]corev1.Container) error {
	var c corev1.Container
	err := protoFields(msg, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1:
			c.Name = string(v)
		case 6:
			var p corev1.ContainerPort
			if err := p.Unmarshal(v); err != nil {
				return err
			}
			c.Ports = append(c.Ports, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*cs = append(*cs, c)
	return nil
}

func slimPodStatus(msg []byte, s *corev1.PodStatus) error {
	return protoFields(msg, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1:
			s.Phase = corev1.PodPhase(v)
		case 6:
			s.PodIP = string(v)
		case 12:
			var ip corev1.PodIP
			if err := ip.Unmarshal(v); err != nil {
				return err
			}
			s.PodIPs = append(s.PodIPs, ip)
		}
		return nil
	})
}
