// Command serval-pause is the process of the lab's pod sandboxes: the
// binary of the image registry.k8s.io/pause that the lab builds (see
// internal/labimage), since the lab has no registry to pull the real one
// from. It stays alive, reaps orphans, and exits 0 on SIGINT or SIGTERM;
// the logic is internal/pause. "-v" prints its version.
package main

import (
	"fmt"
	"os"

	"github.com/servalnet/serval/internal/pause"
	"github.com/servalnet/serval/internal/version"
)

func main() {
	switch {
	case len(os.Args) == 2 && os.Args[1] == "-v":
		fmt.Println("serval-pause", version.Version)
		return
	case len(os.Args) > 1:
		fmt.Fprintf(os.Stderr, "usage: %s [-v]\n", os.Args[0])
		os.Exit(2)
	}
	os.Exit(pause.Run(os.Stderr))
}
