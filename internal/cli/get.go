package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

func newGetCommand(g *globalOptions) *cobra.Command {
	var namespace, output, selector, fieldSelector string
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "Show resources; without a name, list every resource of the kind",
		Example: `  servalctl get ippools
  servalctl get ippool default-ipv4-ippool -o yaml
  servalctl get networkpolicies -A -o wide
  servalctl get workloadendpoints -n prod -l app=web`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			p, err := newPrinter(output, info, allNamespaces)
			if err != nil {
				return err
			}
			ds, err := g.openDatastore(cmd.Context())
			if err != nil {
				return err
			}
			defer ds.Close()
			ctx := cmd.Context()
			var items []api.Resource
			if len(args) > 1 {
				var missing []string
				for _, name := range args[1:] {
					r, err := ds.Get(ctx, api.Key{Kind: info.Kind, Namespace: namespaceFor(info, namespace), Name: name})
					if err != nil {
						missing = append(missing, err.Error())
						continue
					}
					items = append(items, r)
				}
				if len(items) > 0 {
					if err := p.print(g.streams.Out, items, len(args) == 2); err != nil {
						return err
					}
				}
				if len(missing) > 0 {
					return fmt.Errorf("%s", strings.Join(missing, "\n"))
				}
				return nil
			}
			opts := datastore.ListOptions{Kind: info.Kind, LabelSelector: selector, FieldSelector: fieldSelector}
			if info.Namespaced && !allNamespaces {
				opts.Namespace = namespaceFor(info, namespace)
			}
			res, err := ds.List(ctx, opts)
			if err != nil {
				return fmt.Errorf("listing %s: %w", info.Plural, err)
			}
			return p.print(g.streams.Out, res.Items, false)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of namespaced resources (default \"default\")")
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list namespaced resources in every namespace")
	f.StringVarP(&output, "output", "o", "", "output format: yaml, json, wide or name (default: a table)")
	f.StringVarP(&selector, "selector", "l", "", "only resources whose labels match this selector, e.g. \"app == 'web'\"")
	f.StringVar(&fieldSelector, "field-selector", "", "only resources whose fields match, e.g. spec.node=host1")
	return cmd
}

type printer struct {
	format     string
	info       api.KindInfo
	namespaces bool // show the namespace column
}

func newPrinter(format string, info api.KindInfo, all bool) (*printer, error) {
	switch format {
	case "", "wide", "yaml", "json", "name":
	default:
		return nil, fmt.Errorf("unknown output format %q: use yaml, json, wide or name", format)
	}
	return &printer{format: format, info: info, namespaces: info.Namespaced && all}, nil
}

// print writes items. single says the user asked for exactly one resource,
// which yaml and json then print bare rather than wrapped in a List.
func (p *printer) print(w io.Writer, items []api.Resource, single bool) error {
	switch p.format {
	case "yaml", "json":
		var v any = listOf(p.info, items)
		if single && len(items) == 1 {
			v = items[0]
		}
		return writeStructured(w, p.format, v)
	case "name":
		for _, r := range items {
			fmt.Fprintf(w, "%s/%s\n", strings.ToLower(p.info.Kind), r.GetObjectMeta().Name)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	cols := []column{{"NAME", "metadata.name"}}
	if p.namespaces {
		cols = append([]column{{"NAMESPACE", "metadata.namespace"}}, cols...)
	}
	extra := tableColumns[p.info.Kind]
	if p.format == "wide" {
		extra = append(extra, wideColumns[p.info.Kind]...)
	}
	cols = append(cols, extra...)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, r := range items {
		obj, err := toMap(r)
		if err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = lookupPath(obj, c.path)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func writeStructured(w io.Writer, format string, v any) error {
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	if format == "json" {
		_, err = fmt.Fprintf(w, "%s\n", js)
		return err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	_, err = w.Write(y)
	return err
}

// list is how several resources are printed; api.Decode reads it back, so
// `get -o yaml > f; apply -f f` round-trips.
type list struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Items      []api.Resource `json:"items"`
}

func listOf(info api.KindInfo, items []api.Resource) list {
	if items == nil {
		items = []api.Resource{}
	}
	return list{APIVersion: api.APIVersion, Kind: info.Kind + "List", Items: items}
}

type column struct{ header, path string }

// tableColumns are the few facts worth a glance per kind; wideColumns add
// the rest of what an operator checks first.
var tableColumns = map[string][]column{
	"IPPool":              {{"CIDR", "spec.cidr"}, {"SELECTOR", "spec.nodeSelector"}},
	"BGPPeer":             {{"PEERIP", "spec.peerIP"}, {"NODE", "spec.node"}, {"ASN", "spec.asNumber"}},
	"Node":                {{"ASN", "spec.bgp.asNumber"}, {"IPV4", "spec.bgp.ipv4Address"}, {"IPV6", "spec.bgp.ipv6Address"}},
	"GlobalNetworkPolicy": {{"TIER", "spec.tier"}, {"ORDER", "spec.order"}},
	"NetworkPolicy":       {{"TIER", "spec.tier"}, {"ORDER", "spec.order"}},
	"Tier":                {{"ORDER", "spec.order"}},
	"WorkloadEndpoint":    {{"WORKLOAD", "spec.workload"}, {"NODE", "spec.node"}, {"NETWORKS", "spec.ipNetworks"}, {"INTERFACE", "spec.interfaceName"}},
	"HostEndpoint":        {{"NODE", "spec.node"}, {"INTERFACE", "spec.interfaceName"}},
}

var wideColumns = map[string][]column{
	"IPPool":              {{"BLOCKSIZE", "spec.blockSize"}, {"NAT", "spec.natOutgoing"}, {"IPIPMODE", "spec.ipipMode"}, {"VXLANMODE", "spec.vxlanMode"}, {"DISABLED", "spec.disabled"}},
	"BGPPeer":             {{"NODESELECTOR", "spec.nodeSelector"}, {"PEERSELECTOR", "spec.peerSelector"}},
	"GlobalNetworkPolicy": {{"SELECTOR", "spec.selector"}, {"TYPES", "spec.types"}},
	"NetworkPolicy":       {{"SELECTOR", "spec.selector"}, {"TYPES", "spec.types"}},
	"Tier":                {{"DEFAULTACTION", "spec.defaultAction"}},
	"WorkloadEndpoint":    {{"PROFILES", "spec.profiles"}},
	"HostEndpoint":        {{"EXPECTEDIPS", "spec.expectedIPs"}, {"PROFILES", "spec.profiles"}},
	"NetworkSet":          {{"NETS", "spec.nets"}},
	"GlobalNetworkSet":    {{"NETS", "spec.nets"}},
}

func toMap(r api.Resource) (map[string]any, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", api.KeyOf(r), err)
	}
	var m map[string]any
	err = json.Unmarshal(js, &m)
	return m, err
}

// lookupPath renders the value at a dotted path of a JSON object for a
// table cell; lists are joined with commas and missing values are empty.
func lookupPath(obj map[string]any, path string) string {
	var v any = obj
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[part]
	}
	switch x := v.(type) {
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	case float64:
		// JSON numbers arrive as float64; print 1000000, not 1e+06.
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}
