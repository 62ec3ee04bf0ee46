package lab

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestNodeConfigsGolden: what a node's containerd and kubelet are
// configured with, and how its mount namespace is made (testdata/*.golden; go test -run NodeConfigs -update
// rewrites them).
func TestNodeConfigsGolden(t *testing.T) {
	containerd, err := containerdConfig("/run/serval-lab/kube/nodes/node1")
	if err != nil {
		t.Fatal(err)
	}
	kubelet, err := kubeletConfig("/run/serval-lab/kube/nodes/node1", "svl-kube-node1", "172.17.8.101", "/run/serval-lab/kube/kube/ca.crt", "/run/serval-lab/kube/nodes/node1/containerd.sock")
	if err != nil {
		t.Fatal(err)
	}
	mount := []byte(nodeMountScript("/run/serval-lab/kube/nodes/node1") + "\n")
	for name, got := range map[string][]byte{"containerd.toml.golden": containerd, "kubelet.yaml.golden": kubelet, "node-mount.sh.golden": mount} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
		}
	}
}
