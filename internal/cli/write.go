package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

type writeOp int

const (
	opCreate writeOp = iota
	opApply
	opReplace
)

var writeOpInfo = map[writeOp]struct{ use, short, done string }{
	opCreate:  {"create", "Create resources from manifests; fails if any already exists", "created"},
	opApply:   {"apply", "Create resources, or update them if they exist", "applied"},
	opReplace: {"replace", "Replace existing resources; fails if any does not exist", "replaced"},
}

// conflictRetries bounds how often apply re-reads a resource that changed
// under it when the manifest does not pin a resourceVersion.
const conflictRetries = 3

func newWriteCommand(g *globalOptions, op writeOp) *cobra.Command {
	info := writeOpInfo[op]
	var fo fileOptions
	var skipExists bool
	cmd := &cobra.Command{
		Use:   info.use + " -f FILE|DIR|-",
		Short: info.short,
		Long: info.short + `.

Every manifest is read and validated before anything is written: one bad
document means nothing is written. A resourceVersion in a manifest makes the
write conditional: if the stored resource changed since, the write fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := fo.read(g.streams.In)
			if err != nil {
				return err
			}
			ds, err := g.openDatastore(cmd.Context())
			if err != nil {
				return err
			}
			defer ds.Close()
			w := writer{ctx: cmd.Context(), ds: ds, g: g}
			if err := w.precheck(op, docs, skipExists); err != nil {
				return err
			}
			return w.write(op, docs, skipExists)
		},
	}
	fo.addFlags(cmd)
	if op == opCreate {
		cmd.Flags().BoolVar(&skipExists, "skip-exists", false, "skip resources that already exist instead of failing")
	}
	return cmd
}

type writer struct {
	ctx context.Context
	ds  datastore.Interface
	g   *globalOptions
}

// precheck reads what is stored before the first write, so that a create
// of something that exists or a replace of something missing fails whole.
func (w writer) precheck(op writeOp, docs []api.Document, skipExists bool) error {
	if op == opApply {
		return nil
	}
	var errs []error
	for _, d := range docs {
		key := api.KeyOf(d.Resource)
		_, err := w.ds.Get(w.ctx, key)
		switch {
		case err == nil && op == opCreate && !skipExists:
			errs = append(errs, fmt.Errorf("%s: %s already exists (use apply or replace to change it, or --skip-exists)", d.Where(), key))
		case errors.Is(err, datastore.ErrNotFound) && op == opReplace:
			errs = append(errs, fmt.Errorf("%s: %s does not exist (use create or apply)", d.Where(), key))
		case err != nil && !errors.Is(err, datastore.ErrNotFound):
			return fmt.Errorf("reading %s: %w", key, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\nnothing was written", errors.Join(errs...))
	}
	return nil
}

func (w writer) write(op writeOp, docs []api.Document, skipExists bool) error {
	failed := 0
	for _, d := range docs {
		key := api.KeyOf(d.Resource)
		status, err := w.writeOne(op, d.Resource, skipExists)
		if err != nil {
			failed++
			fmt.Fprintf(w.g.streams.Err, "%s: %s: %v\n", d.Where(), key, err)
			continue
		}
		fmt.Fprintf(w.g.streams.Out, "%s %s\n", key, status)
	}
	if failed > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d resources failed", failed, len(docs))}
	}
	return nil
}

func (w writer) writeOne(op writeOp, r api.Resource, skipExists bool) (string, error) {
	info := writeOpInfo[op]
	switch op {
	case opCreate:
		_, err := w.ds.Create(w.ctx, r)
		if errors.Is(err, datastore.ErrAlreadyExists) && skipExists {
			return "skipped (already exists)", nil
		}
		return info.done, err
	case opReplace:
		_, err := w.update(r)
		return info.done, err
	default: // apply
		_, err := w.update(r)
		if errors.Is(err, datastore.ErrNotFound) {
			_, err = w.ds.Create(w.ctx, r)
			return "created", err
		}
		if err == nil {
			return "configured", nil
		}
		return "", err
	}
}

// update writes r over the stored resource. With a resourceVersion in r it
// is one conditional write; without, it pins the version it just read and
// retries if another writer got in between, so it never overwrites a change
// it did not see.
func (w writer) update(r api.Resource) (api.Resource, error) {
	if r.GetObjectMeta().ResourceVersion != "" {
		return w.ds.Update(w.ctx, r)
	}
	for attempt := 0; ; attempt++ {
		cur, err := w.ds.Get(w.ctx, api.KeyOf(r))
		if err != nil {
			return nil, err
		}
		r.GetObjectMeta().ResourceVersion = cur.GetObjectMeta().ResourceVersion
		out, err := w.ds.Update(w.ctx, r)
		if errors.Is(err, datastore.ErrConflict) && attempt < conflictRetries {
			continue
		}
		r.GetObjectMeta().ResourceVersion = ""
		return out, err
	}
}

func newDeleteCommand(g *globalOptions) *cobra.Command {
	var fo fileOptions
	var skipNotExists bool
	cmd := &cobra.Command{
		Use:   "delete (-f FILE|DIR|- | KIND NAME...)",
		Short: "Delete resources named in manifests or on the command line",
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, wheres, err := deleteTargets(&fo, g, args)
			if err != nil {
				return err
			}
			ds, err := g.openDatastore(cmd.Context())
			if err != nil {
				return err
			}
			defer ds.Close()
			ctx := cmd.Context()
			if !skipNotExists {
				var errs []error
				for i, k := range keys {
					if _, err := ds.Get(ctx, k.key); errors.Is(err, datastore.ErrNotFound) {
						errs = append(errs, fmt.Errorf("%s%s does not exist (use --skip-not-exists to ignore)", wheres[i], k.key))
					} else if err != nil {
						return fmt.Errorf("reading %s: %w", k.key, err)
					}
				}
				if len(errs) > 0 {
					return fmt.Errorf("%w\nnothing was deleted", errors.Join(errs...))
				}
			}
			failed := 0
			for i, k := range keys {
				_, err := ds.Delete(ctx, k.key, k.rv)
				switch {
				case errors.Is(err, datastore.ErrNotFound) && skipNotExists:
					fmt.Fprintf(g.streams.Out, "%s skipped (does not exist)\n", k.key)
				case err != nil:
					failed++
					fmt.Fprintf(g.streams.Err, "%s%s: %v\n", wheres[i], k.key, err)
				default:
					fmt.Fprintf(g.streams.Out, "%s deleted\n", k.key)
				}
			}
			if failed > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d resources failed", failed, len(keys))}
			}
			return nil
		},
	}
	fo.addFlags(cmd)
	cmd.Flags().BoolVar(&skipNotExists, "skip-not-exists", false, "skip resources that do not exist instead of failing")
	return cmd
}

type deleteTarget struct {
	key api.Key
	rv  string
}

func deleteTargets(fo *fileOptions, g *globalOptions, args []string) ([]deleteTarget, []string, error) {
	if len(fo.files) > 0 {
		if len(args) > 0 {
			return nil, nil, errors.New("give either -f or KIND NAME..., not both")
		}
		docs, err := fo.read(g.streams.In)
		if err != nil {
			return nil, nil, err
		}
		var out []deleteTarget
		var wheres []string
		for _, d := range docs {
			out = append(out, deleteTarget{key: api.KeyOf(d.Resource), rv: d.Resource.GetObjectMeta().ResourceVersion})
			wheres = append(wheres, d.Where()+": ")
		}
		return out, wheres, nil
	}
	if len(args) < 2 {
		return nil, nil, errors.New("give -f FILE, or a kind and at least one name: servalctl delete ippool my-pool")
	}
	info, err := lookupKind(args[0])
	if err != nil {
		return nil, nil, err
	}
	var out []deleteTarget
	var wheres []string
	for _, name := range args[1:] {
		out = append(out, deleteTarget{key: api.Key{Kind: info.Kind, Namespace: namespaceFor(info, fo.namespace), Name: name}})
		wheres = append(wheres, "")
	}
	return out, wheres, nil
}

func newValidateCommand(g *globalOptions) *cobra.Command {
	var fo fileOptions
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|-",
		Short: "Check manifests without writing them (no datastore needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := fo.read(g.streams.In)
			if err != nil {
				return err
			}
			for _, d := range docs {
				fmt.Fprintf(g.streams.Out, "%s: %s valid\n", d.Where(), api.KeyOf(d.Resource))
			}
			return nil
		},
	}
	fo.addFlags(cmd)
	return cmd
}

// lookupKind resolves what a user typed as a kind, with a helpful error.
func lookupKind(name string) (api.KindInfo, error) {
	info, ok := api.LookupKind(name)
	if !ok || info.Internal {
		return api.KindInfo{}, fmt.Errorf("unknown resource kind %q; known kinds: %s", name, api.KindNames())
	}
	return info, nil
}

// namespaceFor is the namespace a command-line name refers to.
func namespaceFor(info api.KindInfo, ns string) string {
	if !info.Namespaced {
		return ""
	}
	if ns == "" {
		return "default"
	}
	return ns
}
