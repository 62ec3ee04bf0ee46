package lab

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

func (l *Lab) processState(id string) string {
	if pid := l.daemonPID(id); pid != 0 {
		return fmt.Sprintf("running (pid %d)", pid)
	}
	return "NOT RUNNING (log: " + l.logPath(id) + ")"
}

func (l *Lab) agentState(host string) string {
	if !l.HasAgent() {
		return "not built"
	}
	pid := l.AgentPID(host)
	if pid == 0 {
		return "stopped"
	}
	if err := l.agentReady(host); err != nil {
		return fmt.Sprintf("running (pid %d), not ready", pid)
	}
	return fmt.Sprintf("running (pid %d), ready", pid)
}

// Status writes a readable account of the lab: hosts, router, datastore,
// workloads and the BGP sessions as the router and each host see them.
func (l *Lab) Status(ctx context.Context, w io.Writer) error {
	t := l.State.Topology
	fmt.Fprintf(w, "Lab %s (run directory %s)\n", l.Name, l.Dir)
	if !l.State.Complete {
		fmt.Fprintln(w, "WARNING: bring-up did not finish; 'serval-lab down' removes what is there.")
	}
	if !l.HasAgent() {
		fmt.Fprintf(w, "serval-node is not built yet (%s is missing): hosts run no agent, so there is\n"+
			"no BGP, no policy and no cross-host routing; workloads on one host reach each other\n"+
			"through the CNI plugin's /32 routes and proxy ARP alone.\n", l.bin(AgentBinary))
	}

	fmt.Fprintln(w, "\nHOSTS")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tAS\tNETNS\tSERVAL-NODE")
	for _, h := range t.Hosts {
		as := fmt.Sprint(h.ASNumber)
		if h.ASNumber == 0 {
			as = fmt.Sprintf("%d (default)", DefaultHostAS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Address, as, nsState(l.Netns(h.Name)), l.agentState(h.Name))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nINFRASTRUCTURE")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tWHAT\tNETNS\tPROCESS")
	l.datastoreRows(ctx, tw)
	if r := t.Router; r != nil {
		fmt.Fprintf(tw, "%s\t%s\t%s router, AS %d\t%s\t%s\n", r.Name, r.Address, r.Kind, r.ASNumber, nsState(l.Netns(r.Name)), l.processState("router"))
	}
	if t.IsCluster() {
		ds := prefixAddr(t.Datastore.Address)
		for _, id := range []string{KubeControllerManagerID, KubeSchedulerID} {
			fmt.Fprintf(tw, "%s\t%s\tthe cluster's %s\t%s\t%s\n", id, ds, id, l.Netns("datastore"), l.processState(id))
		}
		for _, h := range t.Hosts {
			for _, id := range []string{containerdID(h.Name), kubeletID(h.Name), kubeProxyID(h.Name)} {
				if id == kubeProxyID(h.Name) && t.Cluster.KubeProxy == KubeProxyNone {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\tnode %s\t%s\t%s\n", id, prefixAddr(h.Address), h.Name, l.Netns(h.Name), l.processState(id))
			}
		}
	}
	if t.Wire() {
		fmt.Fprintf(tw, "wire\t%s\tveth eth0 between %s and %s\t-\t\n", t.FabricPrefix(), t.Hosts[0].Name, t.Hosts[1].Name)
	} else {
		fmt.Fprintf(tw, "fabric\t%s\tbridge br0\t%s\t\n", t.FabricPrefix(), nsState(l.Netns("fabric")))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nWORKLOADS")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOST\tNAMESPACE\tIP\tLABELS\tPROFILES\tNETNS")
	for _, wl := range t.Workloads {
		ip := "(not created)"
		if ws := l.State.Workloads[wl.Name]; ws != nil {
			ip = ws.IP
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", wl.Name, wl.Host, wl.Namespace, ip, labelString(wl.Labels), strings.Join(wl.Profiles, ","), nsState(l.Netns(wl.Name)))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nBGP SESSIONS")
	if r := t.Router; r != nil {
		how := "birdc show protocols"
		if r.Kind == "frr" {
			how = "vtysh show bgp summary"
		}
		fmt.Fprintf(w, "-- router %s (%s):\n", r.Name, how)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := l.RouterSessions(cctx)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "   cannot ask the router: %v\n", err)
		} else {
			fmt.Fprint(w, indent(out))
		}
	}
	for _, h := range t.Hosts {
		fmt.Fprintf(w, "-- host %s:\n", h.Name)
		if l.AgentPID(h.Name) == 0 {
			fmt.Fprintln(w, "   no serval-node running, so no BGP speaker")
			continue
		}
		out, err := l.HostServalctl(ctx, h.Name, "node", "status", "--socket", l.AgentSocket(h.Name))
		if err != nil {
			fmt.Fprintf(w, "   servalctl node status failed: %v\n", err)
			continue
		}
		fmt.Fprint(w, indent(string(out)))
	}
	return nil
}

// HostServalctl runs servalctl inside a host's namespace (where `node
// status` finds that host's serval-node).
func (l *Lab) HostServalctl(ctx context.Context, host string, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	argv := append(append([]string{l.bin("servalctl")}, l.datastoreArgs()...), args...)
	return runIn(cctx, l.Netns(host), nil, argv...)
}

func nsState(ns string) string {
	if netnsExists(ns) {
		return ns
	}
	return ns + " (MISSING)"
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("   " + line + "\n")
	}
	return b.String()
}

// FormatMatrix renders a Matrix result as a table: rows are FROM, columns
// TO, cells "allow" or "deny".
func FormatMatrix(w io.Writer, spec ProbeSpec, names []string, res [][]bool) {
	spec, _ = spec.withDefaults()
	fmt.Fprintf(w, "%s, rows FROM, columns TO:\n", spec)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "FROM\\TO")
	for _, n := range names {
		fmt.Fprint(tw, "\t"+n)
	}
	fmt.Fprintln(tw)
	for i, n := range names {
		fmt.Fprint(tw, n)
		for j := range names {
			cell := "deny"
			switch {
			case i == j:
				cell = "-"
			case res[i][j]:
				cell = "allow"
			}
			fmt.Fprint(tw, "\t"+cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// ParseMatrix reads a table FormatMatrix wrote (the first line, the title,
// is optional), for comparing against an expected matrix.
func ParseMatrix(text string) (names []string, res map[[2]string]bool, err error) {
	res = map[[2]string]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasSuffix(line, ":") || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if f[0] == "FROM\\TO" {
			names = f[1:]
			continue
		}
		if names == nil {
			return nil, nil, fmt.Errorf("expected the header line 'FROM\\TO ...' before %q", line)
		}
		if len(f) != len(names)+1 {
			return nil, nil, fmt.Errorf("row %q has %d cells, want %d", f[0], len(f)-1, len(names))
		}
		for j, c := range f[1:] {
			switch c {
			case "allow":
				res[[2]string{f[0], names[j]}] = true
			case "deny":
				res[[2]string{f[0], names[j]}] = false
			case "-":
			default:
				return nil, nil, fmt.Errorf("row %s, column %s: %q is not allow, deny or -", f[0], names[j], c)
			}
		}
	}
	if names == nil {
		return nil, nil, fmt.Errorf("no 'FROM\\TO' header line")
	}
	return names, res, nil
}

// CompareMatrix lists the cells where got differs from want.
func CompareMatrix(want map[[2]string]bool, names []string, got [][]bool) []string {
	var diffs []string
	verdict := func(b bool) string {
		if b {
			return "allow"
		}
		return "deny"
	}
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	keys := make([][2]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a][0] != keys[b][0] {
			return keys[a][0] < keys[b][0]
		}
		return keys[a][1] < keys[b][1]
	})
	for _, k := range keys {
		i, ok1 := idx[k[0]]
		j, ok2 := idx[k[1]]
		if !ok1 || !ok2 {
			diffs = append(diffs, fmt.Sprintf("%s -> %s: expected %s, but the lab has no such workload", k[0], k[1], verdict(want[k])))
			continue
		}
		if got[i][j] != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s -> %s: expected %s, got %s", k[0], k[1], verdict(want[k]), verdict(got[i][j])))
		}
	}
	return diffs
}

// Routes returns `ip route` of a member's namespace.
func (l *Lab) Routes(ctx context.Context, member string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", l.Netns(member), "-4", "route", "show").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("routes of %s: %w: %s", member, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
