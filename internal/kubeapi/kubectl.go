package kubeapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// kubectlTimeout bounds one kubectl command.
const kubectlTimeout = 2 * time.Minute

// KubectlPath is the path of the kubectl binary.
func (c *Cluster) KubectlPath() string { return filepath.Join(c.binDir, "kubectl") }

// Kubectl runs kubectl with args against the cluster as the admin and
// returns its standard output; a failure's error names the command and
// holds its standard error.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.KubectlStdin(nil, args...)
}

// KubectlStdin is Kubectl with stdin as kubectl's standard input (for
// `apply -f -`).
func (c *Cluster) KubectlStdin(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	full := append([]string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, c.KubectlPath(), full...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + c.Dir, "KUBECONFIG=" + c.Kubeconfig}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
