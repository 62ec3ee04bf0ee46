package embedetcd

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStartServeClose(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Config{
		DataDir:         t.TempDir(),
		ListenClientURL: "http://127.0.0.1:0",
		ListenPeerURL:   "http://127.0.0.1:0",
		Logger:          slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.ClientURL(), "http://127.0.0.1:") || strings.HasSuffix(srv.ClientURL(), ":0") {
		t.Fatalf("ClientURL = %q, want a loopback URL with a real port", srv.ClientURL())
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientURL()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := c.Get(ctx, "/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get = %v, %v", resp, err)
	}
	// Info-level chatter must not reach the logger.
	if strings.Contains(logs.String(), "level=INFO") {
		t.Errorf("etcd info logs leaked:\n%s", logs.String())
	}
}
