package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

func newPatchCommand(g *globalOptions) *cobra.Command {
	var namespace, patch string
	cmd := &cobra.Command{
		Use:   "patch KIND NAME -p PATCH",
		Short: "Change fields of a resource with a JSON merge patch (RFC 7386)",
		Example: `  servalctl patch ippool default-ipv4-ippool -p '{"spec":{"disabled":true}}'
  servalctl patch node host1 -p '{"spec":{"bgp":{"routeReflectorClusterID":"224.0.0.1"}}}'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			js, err := yaml.YAMLToJSONStrict([]byte(patch))
			if err != nil {
				return fmt.Errorf("patch is not valid JSON or YAML: %w", err)
			}
			var p map[string]any
			if err := json.Unmarshal(js, &p); err != nil || p == nil {
				return fmt.Errorf("patch must be a JSON object, e.g. '{\"spec\":{\"disabled\":true}}'")
			}
			key := api.Key{Kind: info.Kind, Namespace: namespaceFor(info, namespace), Name: args[1]}
			return g.modify(cmd.Context(), key, func(obj map[string]any) error {
				mergePatch(obj, p)
				return nil
			}, "patched")
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of a namespaced resource (default \"default\")")
	cmd.Flags().StringVarP(&patch, "patch", "p", "", "the merge patch, JSON or YAML")
	_ = cmd.MarkFlagRequired("patch")
	return cmd
}

// modify reads a resource, changes its JSON form with change, checks the
// result like any manifest and writes it back conditionally on the version
// it read, retrying when another writer got in between.
func (g *globalOptions) modify(ctx context.Context, key api.Key, change func(map[string]any) error, done string) error {
	ds, err := g.openDatastore(ctx)
	if err != nil {
		return err
	}
	defer ds.Close()
	for attempt := 0; ; attempt++ {
		cur, err := ds.Get(ctx, key)
		if err != nil {
			return err
		}
		obj, err := toMap(cur)
		if err != nil {
			return err
		}
		if err := change(obj); err != nil {
			return err
		}
		md, _ := obj["metadata"].(map[string]any)
		if md == nil || md["name"] != key.Name || (key.Namespace != "" && md["namespace"] != key.Namespace) || obj["kind"] != key.Kind {
			return fmt.Errorf("%s: the kind, metadata.name and metadata.namespace cannot be changed", key)
		}
		md["resourceVersion"] = cur.GetObjectMeta().ResourceVersion
		js, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", key, err)
		}
		docs, err := api.Load(key.String(), js, nil)
		if err != nil {
			// The "document" is the patched resource, not a file: report
			// the resource's problems without a file position.
			var de *api.DocumentError
			if errors.As(err, &de) {
				err = de.Err
			}
			return fmt.Errorf("%w\nnothing was written", err)
		}
		_, err = ds.Update(ctx, docs[0].Resource)
		if errors.Is(err, datastore.ErrConflict) && attempt < conflictRetries {
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(g.streams.Out, "%s %s\n", key, done)
		return nil
	}
}

// mergePatch applies an RFC 7386 merge patch to target in place: objects
// merge key by key, null deletes, anything else replaces.
func mergePatch(target, patch map[string]any) {
	for k, pv := range patch {
		if pv == nil {
			delete(target, k)
			continue
		}
		pm, pIsObj := pv.(map[string]any)
		tm, tIsObj := target[k].(map[string]any)
		if pIsObj && tIsObj {
			mergePatch(tm, pm)
			continue
		}
		if pIsObj {
			fresh := map[string]any{}
			mergePatch(fresh, pm)
			target[k] = fresh
			continue
		}
		target[k] = pv
	}
}

func newLabelCommand(g *globalOptions) *cobra.Command {
	var namespace string
	var overwrite bool
	var remove []string
	cmd := &cobra.Command{
		Use:   "label KIND NAME KEY=VALUE... [KEY-...]",
		Short: "Add, change or remove labels of a resource",
		Example: `  servalctl label node host1 rack=r1
  servalctl label node host1 rack=r2 --overwrite
  servalctl label node host1 rack-`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			set := map[string]string{}
			for _, a := range args[2:] {
				if k, v, ok := strings.Cut(a, "="); ok {
					set[k] = v
				} else if k, ok := strings.CutSuffix(a, "-"); ok {
					remove = append(remove, k)
				} else {
					return fmt.Errorf("%q is neither KEY=VALUE nor KEY-", a)
				}
			}
			if len(set) == 0 && len(remove) == 0 {
				return errors.New("nothing to do: give KEY=VALUE to set a label or KEY- (or --remove KEY) to remove one")
			}
			key := api.Key{Kind: info.Kind, Namespace: namespaceFor(info, namespace), Name: args[1]}
			return g.modify(cmd.Context(), key, func(obj map[string]any) error {
				md, _ := obj["metadata"].(map[string]any)
				labels, _ := md["labels"].(map[string]any)
				if labels == nil {
					labels = map[string]any{}
				}
				for k, v := range set {
					if old, ok := labels[k]; ok && old != v && !overwrite {
						return fmt.Errorf("%s: label %q is already %q (use --overwrite to change it)", key, k, old)
					}
					labels[k] = v
				}
				for _, k := range remove {
					if _, ok := labels[k]; !ok {
						return fmt.Errorf("%s: has no label %q to remove", key, k)
					}
					delete(labels, k)
				}
				md["labels"] = labels
				return nil
			}, "labeled")
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of a namespaced resource (default \"default\")")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "allow changing the value of an existing label")
	cmd.Flags().StringArrayVar(&remove, "remove", nil, "remove this label (repeatable)")
	return cmd
}
