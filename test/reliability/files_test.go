package reliability

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCredentialFileModes: the one place Serval itself writes a store of
// credentials is the embedded datastore (`servalctl datastore serve`),
// whose etcd data holds users and their password hashes once
// authentication is on. Its directory must be 0700 and its files closed
// to group and others. (The secrets serval-node and servalctl read — BGP
// secrets, etcd TLS keys, CNI configuration — are the operator's files;
// Serval only reads them. The CNI plugin's IPAM lock file is 0600.)
func TestCredentialFileModes(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "etcd")
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command(filepath.Join(binDir, "servalctl"), "datastore", "serve", "--data-dir", dir,
		"--listen-client", client, "--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !eventually(20*time.Second, func() bool {
		_, ok := servalctl(t, testPool, "--etcd-endpoints", client, "--timeout", "2s", "apply", "-f", "-")
		return ok
	}) {
		t.Fatal("the embedded datastore did not start")
	}
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm()
		switch {
		case d.IsDir() && mode&0o077 != 0:
			t.Errorf("directory %s is %04o: others can list the datastore's files", strings.TrimPrefix(p, dir), mode)
		case !d.IsDir() && mode&0o077 != 0:
			t.Errorf("file %s is %04o, want 0600", strings.TrimPrefix(p, dir), mode)
		case !d.IsDir():
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Errorf("no files under %s", dir)
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm() != 0o700 {
		t.Errorf("data directory is %04o, want 0700", st.Mode().Perm())
	}
}
