// Command servalctl is the operator's tool for a Serval network. All of its
// logic lives in internal/cli; this file only wires the process to it.
package main

import (
	"context"
	"os"

	"github.com/servalnet/serval/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
