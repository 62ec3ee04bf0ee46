package why

import (
	"fmt"
	"io"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/verdict"
)

// stagedKinds are listed when registered (see api staged policy kinds).
var stagedKinds = []string{"StagedGlobalNetworkPolicy", "StagedNetworkPolicy", "StagedKubernetesNetworkPolicy"}

// WithStaged returns the snapshot as it would be with every staged policy
// promoted: Set creates or replaces the enforced policy of the same name
// (and kind, and namespace), Delete removes it.
func (s *Snapshot) WithStaged() (*Snapshot, error) {
	out := &Snapshot{}
	set := map[api.Key]api.Resource{}
	del := map[api.Key]bool{}
	var order []api.Key
	for _, r := range s.Staged {
		k, enf, err := promote(r)
		if err != nil {
			return nil, err
		}
		if enf == nil {
			del[k] = true
			continue
		}
		set[k] = enf
		order = append(order, k)
	}
	for _, o := range s.Objects {
		k := api.KeyOf(o)
		if del[k] {
			continue
		}
		if r, ok := set[k]; ok {
			out.Objects = append(out.Objects, r)
			delete(set, k)
			continue
		}
		out.Objects = append(out.Objects, o)
	}
	for _, k := range order {
		if r, ok := set[k]; ok {
			out.Objects = append(out.Objects, r)
		}
	}
	return out, nil
}

// promote returns the key of the enforced policy a staged one stands for
// and, for stagedAction Set, that policy (nil for Delete).
func promote(r api.Resource) (api.Key, api.Resource, error) {
	switch p := r.(type) {
	case *api.StagedGlobalNetworkPolicy:
		g := p.Enforced()
		g.SetDefaults()
		if p.Spec.StagedAction == api.StagedActionDelete {
			return api.KeyOf(g), nil, nil
		}
		return api.KeyOf(g), g, nil
	case *api.StagedNetworkPolicy:
		np := p.Enforced()
		np.SetDefaults()
		if p.Spec.StagedAction == api.StagedActionDelete {
			return api.KeyOf(np), nil, nil
		}
		return api.KeyOf(np), np, nil
	case *api.StagedKubernetesNetworkPolicy:
		np := p.Enforced()
		np.SetDefaults()
		if p.Spec.StagedAction == api.StagedActionDelete {
			return api.KeyOf(np), nil, nil
		}
		return api.KeyOf(np), np, nil
	}
	return api.Key{}, nil, fmt.Errorf("%s is not a staged policy kind this servalctl knows", api.KeyOf(r))
}

// StagedNames lists the staged policies, for the side-by-side header.
func (s *Snapshot) StagedNames() []string {
	var out []string
	for _, r := range s.Staged {
		k := api.KeyOf(r)
		n := k.Name
		if k.Namespace != "" {
			n = k.Namespace + "/" + n
		}
		act := ""
		switch p := r.(type) {
		case *api.StagedGlobalNetworkPolicy:
			act = string(p.Spec.StagedAction)
		case *api.StagedNetworkPolicy:
			act = string(p.Spec.StagedAction)
		case *api.StagedKubernetesNetworkPolicy:
			act = string(p.Spec.StagedAction) + ", as NetworkPolicy " + p.EnforcedName()
		}
		out = append(out, fmt.Sprintf("%s %s (%s)", k.Kind, n, act))
	}
	return out
}

// PrintStaged writes the enforced and the staged traces side by side.
func PrintStaged(w io.Writer, enforced, staged *Result, names []string) {
	fmt.Fprintf(w, "%s: %s now, %s with the staged policies\n", PacketText(enforced.Packet), word(enforced.Verdict), word(staged.Verdict))
	fmt.Fprintf(w, "  source:      %s\n", enforced.Src)
	fmt.Fprintf(w, "  destination: %s\n", enforced.Dst)
	if len(names) == 0 {
		fmt.Fprintln(w, "  staged:      none")
	}
	for _, n := range names {
		fmt.Fprintf(w, "  staged:      %s\n", n)
	}
	for _, d := range []struct {
		name   string
		e      Endpoint
		ta, tb *verdict.Trace
	}{{"egress", enforced.Src, enforced.Egress, staged.Egress}, {"ingress", enforced.Dst, enforced.Ingress, staged.Ingress}} {
		if d.ta == nil {
			fmt.Fprintf(w, "\n%s: %s is not a Serval endpoint: no policy of Serval applies there\n", d.name, d.e.Addrs[0])
			continue
		}
		fmt.Fprintf(w, "\n%s at %s (%s): %s now, %s staged\n", d.name, d.e.Node, d.ta.Endpoint, word(d.ta.Verdict), word(d.tb.Verdict))
		a, b := lines(d.ta.Steps), lines(d.tb.Steps)
		width := len("ENFORCED")
		for _, l := range a {
			width = max(width, len(l))
		}
		fmt.Fprintf(w, "  %-*s | %s\n", width, "ENFORCED", "STAGED")
		for i := 0; i < max(len(a), len(b)); i++ {
			var l, r string
			if i < len(a) {
				l = a[i]
			}
			if i < len(b) {
				r = b[i]
			}
			fmt.Fprintf(w, "  %-*s | %s\n", width, l, r)
		}
	}
	fmt.Fprintf(w, "\nverdict: %s now, %s with the staged policies\n", word(enforced.Verdict), word(staged.Verdict))
}

func lines(steps []verdict.Step) []string {
	out := make([]string, 0, len(steps)+1)
	for _, s := range steps {
		out = append(out, strings.TrimRight(StepText(s), " "))
	}
	return out
}
