package kubernetes

import (
	"errors"
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

// protoFields calls f for each field of a protobuf message: v is the
// bytes of a length-delimited field, n the value of a varint; fields of
// other wire types are skipped.
func protoFields(msg []byte, f func(num protowire.Number, v []byte, n uint64) error) error {
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
		var err error
		switch typ {
		case protowire.BytesType:
			var v []byte
			v, l = protowire.ConsumeBytes(msg)
			if l >= 0 {
				err = f(num, v, 0)
			}
		case protowire.VarintType:
			var n uint64
			n, l = protowire.ConsumeVarint(msg)
			if l >= 0 {
				err = f(num, nil, n)
			}
		default:
			l = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		if err != nil {
			return err
		}
		msg = msg[l:]
	}
	return nil
}

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

// protoPayload is the object's own message inside the protobuf envelope
// the API server sends (the "k8s\x00" prefix, then a runtime.Unknown
// whose field 2 is the object), and the kind the envelope names.
func protoPayload(raw []byte) (msg []byte, kind string, err error) {
	const prefix = "k8s\x00"
	if len(raw) < len(prefix) || string(raw[:len(prefix)]) != prefix {
		return nil, "", errors.New("not a protobuf message")
	}
	err = protoFields(raw[len(prefix):], func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case 1: // TypeMeta: apiVersion 1, kind 2
			return protoFields(v, func(num protowire.Number, v []byte, _ uint64) error {
				if num == 2 {
					kind = string(v)
				}
				return nil
			})
		case 2:
			msg = v
		}
		return nil
	})
	return msg, kind, err
}
