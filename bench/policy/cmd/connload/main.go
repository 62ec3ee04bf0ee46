// Command connload is the policy benchmark's load tool, for use in any
// namespace (ip netns exec NS connload ...):
//
//	connload -serve :8080                   # answer connections
//	connload -addr 10.65.0.2:8080 -d 5s -c 2  # measure
//
// It prints connections per second and SYN→SYN-ACK latency percentiles.
// The client closes first; give its namespace net.ipv4.tcp_tw_reuse=1 and
// a wide net.ipv4.ip_local_port_range so that TIME_WAIT does not run it out
// of ports.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"time"

	"github.com/servalnet/serval/bench/policy"
)

func main() {
	serve := flag.String("serve", "", "listen on this address and answer connections")
	addr := flag.String("addr", "", "connect to this host:port")
	dur := flag.Duration("d", 5*time.Second, "how long to run")
	workers := flag.Int("c", 1, "concurrent connection loops")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch {
	case *serve != "":
		l, err := net.Listen("tcp", *serve)
		if err != nil {
			fmt.Fprintln(os.Stderr, "connload:", err)
			os.Exit(1)
		}
		go func() { <-ctx.Done(); l.Close() }()
		if err := policy.Serve(l); err != nil {
			fmt.Fprintln(os.Stderr, "connload:", err)
			os.Exit(1)
		}
	case *addr != "":
		r, err := policy.Load(ctx, policy.Options{Addr: *addr, Duration: *dur, Workers: *workers})
		if err != nil {
			fmt.Fprintln(os.Stderr, "connload:", err)
			os.Exit(1)
		}
		fmt.Println(r)
	default:
		flag.Usage()
		os.Exit(2)
	}
}
