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

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{DataDir: dir, ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"}
	put := func(srv *Server, k, v string) {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientURL()}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v != "" {
			if _, err := c.Put(ctx, k, v); err != nil {
				t.Fatal(err)
			}
			return
		}
		resp, err := c.Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
			t.Fatalf("after restart Get(%s) = %v, %v", k, resp, err)
		}
	}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	put(srv, "/k", "kept")
	srv.Close()
	srv, err = Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart on the same data directory: %v", err)
	}
	defer srv.Close()
	put(srv, "/k", "")
}

func TestStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Start(ctx, Config{}); err == nil {
		t.Error("Start without a data directory succeeded")
	}
	for _, u := range []string{"127.0.0.1:2379", "ftp://127.0.0.1:1", "http://127.0.0.1:1/path", "http://%zz"} {
		if _, err := Start(ctx, Config{DataDir: t.TempDir(), ListenClientURL: u}); err == nil {
			t.Errorf("Start with client URL %q succeeded", u)
		}
	}
	if _, err := Start(ctx, Config{DataDir: t.TempDir(), ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0", ClientCertFile: "c.pem", ClientKeyFile: "k.pem"}); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("TLS files with an http URL: %v", err)
	}
	// A port that is taken is reported, not waited on.
	first, err := Start(ctx, Config{DataDir: t.TempDir(), ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = Start(ctx, Config{DataDir: t.TempDir(), ListenClientURL: first.ClientURL(), ListenPeerURL: "http://127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(first.ClientURL(), "http://")) {
		t.Errorf("Start on a taken port: %v", err)
	}
}
