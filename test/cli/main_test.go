// Package cli_test runs the built servalctl binary, as a user would, against
// a real etcd that the same binary serves (servalctl datastore serve).
package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	servalctl string // path of the binary under test
	endpoint  string // client URL of the etcd it serves
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "servalctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	servalctl = filepath.Join(dir, "servalctl")
	build := exec.Command("go", "build", "-o", servalctl, "github.com/servalnet/serval/cmd/servalctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building servalctl:", err)
		return 1
	}
	endpoint = "http://" + freeAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := exec.CommandContext(ctx, servalctl, "datastore", "serve",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client", endpoint, "--listen-peer", "http://"+freeAddr())
	var serveOut bytes.Buffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting datastore:", err)
		return 1
	}
	defer func() {
		_ = serve.Process.Signal(os.Interrupt)
		_ = serve.Wait()
	}()
	if !waitReady(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "datastore did not become ready:\n"+serveOut.String())
		return 1
	}
	return m.Run()
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // no loopback: nothing else here can work either
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if r := ctl(nil, "get", "tiers", "--timeout", "2s"); r.code == 0 {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

type result struct {
	code        int
	stdout, err string
}

// ctl runs servalctl against the test datastore with stdin (may be nil).
func ctl(stdin []byte, args ...string) result {
	cmd := exec.Command(servalctl, args...)
	cmd.Env = append(os.Environ(), "SERVAL_ETCD_ENDPOINTS="+endpoint)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return result{code: code, stdout: out.String(), err: errOut.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.err)
}

// expect checks exit status and that each want string appears in stdout or
// stderr (prefix "out:" or "err:" picks one).
func expect(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
	for _, w := range wants {
		where, text := r.stdout+r.err, w
		if s, ok := strings.CutPrefix(w, "out:"); ok {
			where, text = r.stdout, s
		} else if s, ok := strings.CutPrefix(w, "err:"); ok {
			where, text = r.err, s
		}
		if !strings.Contains(where, text) {
			t.Errorf("want %q in output, got %s", text, r)
		}
	}
}
