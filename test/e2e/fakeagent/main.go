// Command fakeagent stands in for serval-node in the lab's agent-control
// test: it takes serval-node's flags, prints them, serves /readiness (200
// after a short start-up) on the port the lab polls, and answers /status on
// its status socket as an agent without BGP. It programs nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	nodename := flag.String("nodename", "", "")
	etcd := flag.String("etcd-endpoints", "", "")
	ip := flag.String("ip", "", "")
	port := flag.Int("health-port", 9099, "")
	socket := flag.String("status-socket", "", "")
	_ = flag.String("ip6", "", "")
	_ = flag.String("mtu-file", "", "") // the real agent writes its workloads' MTU there
	flag.Parse()
	if *nodename == "" || *etcd == "" || *ip == "" {
		fmt.Fprintln(os.Stderr, "fakeagent: --nodename, --etcd-endpoints and --ip are required")
		os.Exit(2)
	}
	fmt.Printf("fakeagent: nodename=%s etcd=%s ip=%s\n", *nodename, *etcd, *ip)
	var ready atomic.Bool
	time.AfterFunc(300*time.Millisecond, func() { ready.Store(true) })
	mux := http.NewServeMux()
	mux.HandleFunc("/readiness", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if *socket != "" {
		_ = os.MkdirAll(filepath.Dir(*socket), 0o755)
		_ = os.Remove(*socket)
		l, err := net.Listen("unix", *socket)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakeagent:", err)
			os.Exit(1)
		}
		status := http.NewServeMux()
		status.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, `{"node":%q,"health":{"live":true,"ready":true}}`, *nodename)
		})
		go func() { _ = http.Serve(l, status) }()
	}
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		fmt.Println("fakeagent: stopping on signal")
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(1)
	}
}
