package kubernetes_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/cli"
	"github.com/servalnet/serval/internal/cni"
	"github.com/servalnet/serval/internal/cni/cniopen"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/kubernetes"
	"github.com/servalnet/serval/internal/kubetest"
)

// servalctl runs servalctl in this process and returns its output.
func servalctl(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := cli.Main(ctx, args, cli.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return out.String() + errOut.String(), code
}

// TestServalctlOnKubernetes: servalctl chooses the Kubernetes datastore
// by flag or environment, and applies, gets and deletes through it.
func TestServalctlOnKubernetes(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	manifest := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: servalctl-applied
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [443]
`
	flags := []string{"--datastore-type", "kubernetes", "--kubeconfig", c.Kubeconfig}
	if out, code := servalctl(t, manifest, append(flags, "apply", "-f", "-")...); code != 0 {
		t.Fatalf("servalctl apply: exit %d: %s", code, out)
	}
	got := c.MustKubectl(t, "get", "globalnetworkpolicies.projectcalico.org", "servalctl-applied", "-o", "jsonpath={.spec.ingress[0].destination.ports[0]}")
	if got != "443" {
		t.Errorf("kubectl sees port %q of the policy servalctl applied", got)
	}

	// The type from the environment, the kubeconfig from $KUBECONFIG.
	t.Setenv(datastore.EnvType, "kubernetes")
	t.Setenv("KUBECONFIG", c.Kubeconfig)
	out, code := servalctl(t, "", "get", "globalnetworkpolicy", "servalctl-applied", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "app == 'web'") {
		t.Errorf("servalctl get: exit %d: %s", code, out)
	}
	if out, code := servalctl(t, "", "delete", "globalnetworkpolicy", "servalctl-applied"); code != 0 {
		t.Errorf("servalctl delete: exit %d: %s", code, out)
	}
	if out, err := c.Kubectl("get", "globalnetworkpolicies.projectcalico.org", "servalctl-applied"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("after servalctl delete, kubectl get: %s %v", out, err)
	}

	// An API server without Serval's CRDs is refused with what to do.
	empty := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(empty, []byte("apiVersion: v1\nkind: Config\nclusters: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := servalctl(t, "", "--kubeconfig", empty, "get", "ippools"); code == 0 || !strings.Contains(out, "Kubernetes datastore") {
		t.Errorf("servalctl with an unusable kubeconfig: exit %d: %s", code, out)
	}
}

// TestCNIOpensKubernetes: a CNI configuration with Calico's
// datastore_type and kubernetes.kubeconfig opens this backend.
func TestCNIOpensKubernetes(t *testing.T) {
	c := kubetest.Shared(t)
	installAllCRDs(t, c)
	conf, err := cni.LoadNetConf([]byte(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"serval",
		"datastore_type":"kubernetes","kubernetes":{"kubeconfig":"` + c.Kubeconfig + `"},"ipam":{"type":"serval-ipam"}}`))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cniopen.Open(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if _, ok := ds.(*kubernetes.Store); !ok {
		t.Fatalf("OpenDatastore gave a %T", ds)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := ds.List(ctx, datastore.ListOptions{Kind: "IPPool"}); err != nil {
		t.Errorf("List through the CNI plugin's datastore: %v", err)
	}
}
