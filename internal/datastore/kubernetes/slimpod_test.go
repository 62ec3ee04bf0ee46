package kubernetes

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/k8sconv"
)

// richPod is a pod as a cluster holds it: besides what an endpoint is
// made of, the managed fields, volumes, environment, resources and
// statuses that the slim decoder skips.
func richPod() *corev1.Pod {
	now := metav1.NewTime(time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1", GenerateName: "web-", Namespace: "shop", UID: "u-1", ResourceVersion: "4711", CreationTimestamp: now,
			Labels:          map[string]string{"app": "web", "tier": "front"},
			Annotations:     map[string]string{k8sconv.AnnotationPodIP: "10.1.2.3/32", k8sconv.AnnotationContainerID: "abc", "other": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5f", UID: "u-rs"}},
			Finalizers:      []string{"example.com/hold"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:podIPs":{}}}`)}, Subresource: "status"}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-a", ServiceAccountName: "builder", DeprecatedServiceAccount: "builder",
			Volumes: []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}},
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 9000, Protocol: corev1.ProtocolUDP}}}},
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx", Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
					{ContainerPort: 81},
					{Name: "dns", ContainerPort: 53, HostPort: 5353, HostIP: "10.0.0.1", Protocol: corev1.ProtocolSCTP},
				},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}},
			}, {Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.1.2.3", PodIPs: []corev1.PodIP{{IP: "10.1.2.3"}, {IP: "fd00::3"}},
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, Image: "nginx"}},
		},
	}
}

// TestSlimPod: for pods of every shape the conversion reads, the slim
// decoder gives the same endpoint (or the same error, or the same "no
// endpoint") as the whole Pod, and the same name, namespace and
// resourceVersion.
func TestSlimPod(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC))
	cases := []struct {
		name   string
		change func(*corev1.Pod)
	}{
		{name: "running, dual-stack", change: func(*corev1.Pod) {}},
		{name: "addresses from the annotation only", change: func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodPending} }},
		{name: "podIP only", change: func(p *corev1.Pod) { p.Status.PodIPs = nil }},
		{name: "finished", change: func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }},
		{name: "being deleted, addresses released", change: func(p *corev1.Pod) {
			p.DeletionTimestamp = &deleted
			p.Annotations[k8sconv.AnnotationPodIP] = ""
			p.Status.PodIPs, p.Status.PodIP = nil, ""
		}},
		{name: "host network", change: func(p *corev1.Pod) { p.Spec.HostNetwork = true }},
		{name: "not scheduled", change: func(p *corev1.Pod) { p.Spec.NodeName = "" }},
		{name: "no labels, no annotations, no service account", change: func(p *corev1.Pod) {
			p.Labels, p.Annotations, p.Spec.ServiceAccountName = nil, nil, ""
		}},
		{name: "a bad address", change: func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "not-an-ip"}} }},
		{name: "MAC and floating IPs", change: func(p *corev1.Pod) {
			p.Annotations[k8sconv.AnnotationHwAddr] = "02:00:00:00:00:01"
			p.Annotations[k8sconv.AnnotationFloatingIPs] = `["192.0.2.7"]`
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := richPod()
			c.change(pod)
			msg, err := pod.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			o, err := slimPod(msg)
			if err != nil {
				t.Fatal(err)
			}
			slim := o.(*corev1.Pod)
			if slim.Name != pod.Name || slim.Namespace != pod.Namespace || slim.ResourceVersion != pod.ResourceVersion {
				t.Errorf("slim pod is %s/%s at %s, want %s/%s at %s", slim.Namespace, slim.Name, slim.ResourceVersion, pod.Namespace, pod.Name, pod.ResourceVersion)
			}
			if got, want := convertBoth(slim), convertBoth(pod); got != want {
				t.Errorf("from the slim pod:\n%s\nfrom the whole pod:\n%s", got, want)
			}
		})
	}
}

// convertBoth prints what the conversion makes of a pod.
func convertBoth(p *corev1.Pod) string {
	w, ok, err := k8sconv.PodToWorkloadEndpoint(p)
	return fmt.Sprintf("ok=%v err=%v endpoint=%+v", ok, err, w)
}

// FuzzSlimPod: no input makes the slim decoder panic, and whatever both
// decoders read, they read alike for the conversion.
func FuzzSlimPod(f *testing.F) {
	for _, change := range []func(*corev1.Pod){
		func(*corev1.Pod) {},
		func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		func(p *corev1.Pod) { p.Status = corev1.PodStatus{} },
	} {
		p := richPod()
		change(p)
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		o, slimErr := slimPod(msg)
		var whole corev1.Pod
		if err := whole.Unmarshal(msg); err != nil || slimErr != nil {
			return
		}
		slim := o.(*corev1.Pod)
		if !reflect.DeepEqual([3]string{slim.Name, slim.Namespace, slim.ResourceVersion}, [3]string{whole.Name, whole.Namespace, whole.ResourceVersion}) {
			t.Fatalf("metadata differs: %s/%s@%s vs %s/%s@%s", slim.Namespace, slim.Name, slim.ResourceVersion, whole.Namespace, whole.Name, whole.ResourceVersion)
		}
		if got, want := convertBoth(slim), convertBoth(&whole); got != want {
			t.Fatalf("from the slim pod:\n%s\nfrom the whole pod:\n%s", got, want)
		}
	})
}
