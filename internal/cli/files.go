package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/api"
)

// fileOptions are the flags of every command that reads manifests.
type fileOptions struct {
	files     []string
	recursive bool
	namespace string
}

func (o *fileOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "manifest file, directory or - for standard input (repeatable)")
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "R", false, "read directories given with -f recursively")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "namespace for namespaced resources that do not name one (default \"default\")")
}

// manifestExts are the file names read from a directory.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// read loads every document of every source (api.Load: namespace filled
// in, defaults applied, validated). It returns every
// problem at once, so that nothing is written unless the whole input is
// good.
func (o *fileOptions) read(in io.Reader) ([]api.Document, error) {
	if len(o.files) == 0 {
		return nil, errors.New("no input: give manifests with -f FILE, -f DIR or -f -")
	}
	var paths []string
	for _, f := range o.files {
		found, err := o.expand(f)
		if err != nil {
			return nil, err
		}
		paths = append(paths, found...)
	}
	var docs []api.Document
	var errs []error
	for _, p := range paths {
		var data []byte
		var err error
		if p == "-" {
			data, err = io.ReadAll(in)
		} else {
			data, err = os.ReadFile(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", p, err))
			continue
		}
		d, err := api.Load(p, data, o.setNamespace)
		if err != nil {
			errs = append(errs, err)
		}
		docs = append(docs, d...)
	}
	if err := checkDuplicates(docs); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w\nnothing was written", errors.Join(errs...))
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no resources found in %s", strings.Join(o.files, ", "))
	}
	return docs, nil
}

// expand turns one -f argument into the files it names.
func (o *fileOptions) expand(f string) ([]string, error) {
	if f == "-" {
		return []string{f}, nil
	}
	st, err := os.Stat(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f, err)
	}
	if !st.IsDir() {
		return []string{f}, nil
	}
	var out []string
	err = filepath.WalkDir(f, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != f && !o.recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if manifestExts[strings.ToLower(filepath.Ext(p))] {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", f, err)
	}
	sort.Strings(out)
	return out, nil
}

// setNamespace puts a namespaced resource that names no namespace in the
// one given with -n, else in "default", as kubectl and calicoctl do.
func (o *fileOptions) setNamespace(r api.Resource) error {
	info, _ := api.LookupKind(r.GetTypeMeta().Kind)
	m := r.GetObjectMeta()
	if info.Namespaced {
		switch {
		case m.Namespace == "" && o.namespace != "":
			m.Namespace = o.namespace
		case m.Namespace == "":
			m.Namespace = "default"
		case o.namespace != "" && m.Namespace != o.namespace:
			return fmt.Errorf("%s: metadata.namespace %q does not match --namespace %q", api.KeyOf(r), m.Namespace, o.namespace)
		}
	}
	return nil
}

func checkDuplicates(docs []api.Document) error {
	seen := map[api.Key]api.Document{}
	var errs []error
	for _, d := range docs {
		k := api.KeyOf(d.Resource)
		if first, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is also defined in %s", d.Where(), k, first.Where()))
			continue
		}
		seen[k] = d
	}
	return errors.Join(errs...)
}
