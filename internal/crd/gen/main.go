// Command gen writes the CustomResourceDefinitions of Serval's kinds into a
// directory, one file per kind (<plural>.projectcalico.org.yaml), and
// removes the files of kinds that no longer exist. `make crds` runs it:
//
//	go run ./internal/crd/gen -out manifests/crds
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/crd"
)

func main() {
	out := flag.String("out", "manifests/crds", "directory to write the CRDs into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "crd gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := crd.Files(api.Kinds())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "*."+crd.Group+".yaml"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("remove stale %s: %w", f, err)
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	fmt.Printf("crd gen: wrote %d CRDs into %s: %s\n", len(names), dir, strings.Join(names, ", "))
	return nil
}
