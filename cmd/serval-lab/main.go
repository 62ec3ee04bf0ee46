// Command serval-lab builds a virtual data center in network namespaces
// and runs Serval in it. All the logic is in internal/lab.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/servalnet/serval/internal/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := lab.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
