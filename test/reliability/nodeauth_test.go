package reliability

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/servalnet/serval/internal/lab"
)

// TestNodeEtcdAuth runs serval-node against an etcd with authentication
// on, both inside a namespace of the test's own (so the agent's nftables
// and routes stay there): with the right password it becomes ready; with
// a wrong one it does not, and says why; neither password appears in its
// log, even at debug level.
func TestNodeEtcdAuth(t *testing.T) {
	needRoot(t)
	needBinary(t, "etcd")
	ns := labName("auth")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, argv := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1"},
		{"-n", ns, "link", "set", "d1", "up"},
		{"-n", ns, "addr", "add", "10.95.0.1/24", "dev", "d0"},
		{"-n", ns, "link", "set", "d0", "up"},
	} {
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		if argv[0] == "netns" {
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		}
	}
	dir := t.TempDir()
	// etcd inside the namespace.
	const port = 23790
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	etcd := exec.Command("ip", "netns", "exec", ns, "etcd", "--name", "auth", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", ep, "--advertise-client-urls", ep,
		"--listen-peer-urls", "http://127.0.0.1:23800", "--initial-advertise-peer-urls", "http://127.0.0.1:23800",
		"--initial-cluster", "auth=http://127.0.0.1:23800")
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = etcd.Process.Kill(); _ = etcd.Wait() })
	// The test's etcd client dials inside the namespace: a socket stays
	// in the namespace it was made in.
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := lab.InNetns(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
	if !eventually(20*time.Second, func() bool {
		c, err := dial(ctx, fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatal("etcd did not start in the namespace")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const password, wrong = "Node-etcd-s3cret-pw", "Node-wrong-guess-pw"
	for i, step := range []func() error{
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "serval", password); return err },
		func() error { _, err := c.UserGrantRole(ctx, "serval", "root"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up etcd auth (step %d): %v", i, err)
		}
	}

	node := func(pw, log string) *exec.Cmd {
		f, err := os.Create(log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", ns, filepath.Join(binDir, "serval-node"),
			"--nodename", "relauth", "--etcd-endpoints", ep, "--etcd-username", "serval", "--etcd-password", pw,
			"--ip", "10.95.0.1/24", "--bgp=false", "--metrics-listen", "",
			"--status-socket", filepath.Join(dir, "node.sock"), "--mtu-file", filepath.Join(dir, "mtu"), "--secrets-dir", dir, "--log-level", "debug")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); f.Close() })
		return cmd
	}

	// Wrong password: never ready, and the log says authentication failed.
	badLog := filepath.Join(dir, "bad.log")
	bad := node(wrong, badLog)
	time.Sleep(4 * time.Second)
	if code, _ := healthNS(ns, "/readiness"); code == 200 {
		t.Errorf("serval-node with a wrong etcd password is ready")
	}
	_ = bad.Process.Kill()
	_ = bad.Wait()
	data, _ := os.ReadFile(badLog)
	if !strings.Contains(strings.ToLower(string(data)), "auth") {
		t.Errorf("serval-node with a wrong password does not say authentication failed:\n%s", data)
	}
	if strings.Contains(string(data), wrong) {
		t.Errorf("serval-node logged the (wrong) etcd password:\n%s", data)
	}

	goodLog := filepath.Join(dir, "good.log")
	good := node(password, goodLog)
	if !eventually(30*time.Second, func() bool { code, _ := healthNS(ns, "/readiness"); return code == 200 }) {
		data, _ := os.ReadFile(goodLog)
		t.Fatalf("serval-node with the right etcd password never became ready:\n%s", data)
	}
	_ = good.Process.Signal(os.Interrupt)
	time.Sleep(500 * time.Millisecond)
	data, _ = os.ReadFile(goodLog)
	if strings.Contains(string(data), password) {
		t.Errorf("serval-node logged the etcd password:\n%s", data)
	}
	t.Logf("serval-node's debug log with an etcd password: %d bytes, no password", len(data))
}
