package calc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/hoststate"
	"github.com/servalnet/serval/internal/selector"
)

// ruleSet is a policy's or profile's rules resolved to set IDs, with the
// definitions of the sets they refer to.
type ruleSet struct {
	inbound, outbound []hoststate.Rule
	sets              map[string]setSpec
}

func (rs *ruleSet) setIDs() []string {
	ids := make([]string, 0, len(rs.sets))
	for id := range rs.sets {
		ids = append(ids, id)
	}
	return ids
}

// convertRules resolves rules. ns is the namespace of a NetworkPolicy ("" for
// global policies and profiles): its rule selectors only match entities of
// that namespace unless they say otherwise with a namespaceSelector. A
// rule that cannot be converted (a selector or network that does not
// parse, a Kubernetes service match Serval has no services for) is left
// out and logged: the datastore validates what it stores, so this only
// happens with data written behind its back, and dropping one rule is
// more predictable than dropping the whole policy.
func (g *Graph) convertRules(owner string, ns string, dir string, in []api.Rule, rs *ruleSet) []hoststate.Rule {
	var out []hoststate.Rule
	for i := range in {
		r, err := convertRule(&in[i], ns, rs)
		if err != nil {
			g.log.Error("skipping a rule that cannot be rendered", "owner", owner, "rule", fmt.Sprintf("%s[%d]", dir, i), "err", err)
			continue
		}
		r.ID = ruleID(owner, dir, i, &in[i])
		out = append(out, r)
	}
	return out
}

func ruleID(owner, dir string, i int, r *api.Rule) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum224([]byte(owner + "|" + dir + "|" + strconv.Itoa(i) + "|" + string(b)))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:16]
}

func convertRule(ar *api.Rule, ns string, rs *ruleSet) (hoststate.Rule, error) {
	var r hoststate.Rule
	switch ar.Action {
	case api.Allow, api.Deny, api.Pass, api.Log:
		r.Action = hoststate.Action(ar.Action)
	default:
		return r, fmt.Errorf("unknown action %q", ar.Action)
	}
	if ar.IPVersion != nil {
		if *ar.IPVersion != 4 && *ar.IPVersion != 6 {
			return r, fmt.Errorf("ipVersion %d is not 4 or 6", *ar.IPVersion)
		}
		r.IPVersion = *ar.IPVersion
	}
	var err error
	if r.Protocol, err = protoNum(ar.Protocol); err != nil {
		return r, err
	}
	if r.NotProtocol, err = protoNum(ar.NotProtocol); err != nil {
		return r, err
	}
	if ar.ICMP != nil {
		if r.ICMPType, r.ICMPCode, err = icmp(ar.ICMP); err != nil {
			return r, err
		}
	}
	if ar.NotICMP != nil {
		if r.NotICMPType, r.NotICMPCode, err = icmp(ar.NotICMP); err != nil {
			return r, err
		}
	}
	if ar.Source.Services != nil || ar.Destination.Services != nil {
		return r, fmt.Errorf("service matches are not supported")
	}
	// Named ports carry their protocol; the rule's protocol says which one
	// (TCP unless UDP or SCTP), as in Calico.
	npProto := uint8(api.ProtoTCP)
	if r.Protocol != nil && (*r.Protocol == api.ProtoUDP || *r.Protocol == api.ProtoSCTP) {
		npProto = *r.Protocol
	}
	type side struct {
		er                     *api.EntityRule
		nets, notNets          *[]netip.Prefix
		sets, notSets          *[]string
		ports, notPorts        *[]hoststate.PortRange
		namedSets, notNamedSet *[]string
	}
	for _, s := range []side{
		{&ar.Source, &r.SrcNets, &r.NotSrcNets, &r.SrcIPSetIDs, &r.NotSrcIPSetIDs, &r.SrcPorts, &r.NotSrcPorts, &r.SrcNamedPortIPSetIDs, &r.NotSrcNamedPortIPSetIDs},
		{&ar.Destination, &r.DstNets, &r.NotDstNets, &r.DstIPSetIDs, &r.NotDstIPSetIDs, &r.DstPorts, &r.NotDstPorts, &r.DstNamedPortIPSetIDs, &r.NotDstNamedPortIPSetIDs},
	} {
		if *s.nets, err = prefixes(s.er.Nets); err != nil {
			return r, err
		}
		if *s.notNets, err = prefixes(s.er.NotNets); err != nil {
			return r, err
		}
		pos, neg, err := entitySelectors(s.er, ns)
		if err != nil {
			return r, err
		}
		ports, named := splitPorts(s.er.Ports)
		notPorts, notNamed := splitPorts(s.er.NotPorts)
		*s.ports, *s.notPorts = ports, notPorts
		// Named ports are filtered by the positive selector (Calico's
		// optimisation: the rule only matches inside it anyway), also for
		// the negated ones.
		npSel := pos
		if npSel == nil {
			npSel, _ = selector.Parse("all()")
		}
		for _, name := range named {
			spec := namedPortSetSpec(npSel, name, npProto)
			rs.sets[spec.id] = spec
			*s.namedSets = appendUnique(*s.namedSets, spec.id)
		}
		for _, name := range notNamed {
			spec := namedPortSetSpec(npSel, name, npProto)
			rs.sets[spec.id] = spec
			*s.notNamedSet = appendUnique(*s.notNamedSet, spec.id)
		}
		// The selector's own set is needed unless named ports alone
		// already restrict the rule to it.
		if pos != nil && (len(ports) > 0 || len(named) == 0) {
			spec := selectorSetSpec(pos)
			rs.sets[spec.id] = spec
			*s.sets = append(*s.sets, spec.id)
		}
		if neg != nil {
			spec := selectorSetSpec(neg)
			rs.sets[spec.id] = spec
			*s.notSets = append(*s.notSets, spec.id)
		}
	}
	return r, nil
}

func appendUnique(ids []string, id string) []string {
	for _, x := range ids {
		if x == id {
			return ids
		}
	}
	return append(ids, id)
}

// entitySelectors combines an entity rule's selector, namespaceSelector,
// serviceAccounts and notSelector the way Calico does: one positive
// selector, scoped to the policy's namespace (or to the namespaces the
// namespaceSelector picks) as soon as any selector field is used; the
// notSelector folded into it when there is one, since the rule can only
// match inside the positive selector anyway.
func entitySelectors(er *api.EntityRule, ns string) (pos, neg selector.Selector, err error) {
	canon := func(s string) (string, error) {
		sel, err := selector.Parse(s)
		if err != nil {
			return "", err
		}
		return sel.String(), nil
	}
	var parts []string
	if er.ServiceAccounts != nil {
		if er.ServiceAccounts.Selector != "" {
			c, err := canon(er.ServiceAccounts.Selector)
			if err != nil {
				return nil, nil, fmt.Errorf("serviceAccounts.selector: %w", err)
			}
			parts = append(parts, prefixLabels(c, serviceAccountLabelPrefix, false))
		}
		if len(er.ServiceAccounts.Names) > 0 {
			var q []string
			for _, n := range er.ServiceAccounts.Names {
				q = append(q, quote(n))
			}
			parts = append(parts, serviceAccountLbl+" in {"+strings.Join(q, ", ")+"}")
		}
	}
	if er.Selector != "" {
		c, err := canon(er.Selector)
		if err != nil {
			return nil, nil, fmt.Errorf("selector: %w", err)
		}
		parts = append(parts, c)
	}
	nsSel := ""
	switch {
	case er.NamespaceSelector != "":
		c, err := canon(er.NamespaceSelector)
		if err != nil {
			return nil, nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		nsSel = prefixLabels(c, namespaceLabelPrefix, true)
	case ns != "":
		nsSel = selector.NamespaceLabel + " == " + quote(ns)
	}
	if nsSel != "" && (len(parts) > 0 || er.NotSelector != "" || er.NamespaceSelector != "") {
		parts = append([]string{nsSel}, parts...)
	}
	notText := ""
	if er.NotSelector != "" {
		if notText, err = canon(er.NotSelector); err != nil {
			return nil, nil, fmt.Errorf("notSelector: %w", err)
		}
	}
	if len(parts) > 0 && notText != "" {
		parts = append(parts, "!("+notText+")")
		notText = ""
	}
	if len(parts) > 0 {
		if pos, err = selector.Parse("(" + strings.Join(parts, ") && (") + ")"); err != nil {
			return nil, nil, fmt.Errorf("combined selector: %w", err)
		}
	}
	if notText != "" {
		if neg, err = selector.Parse(notText); err != nil {
			return nil, nil, err
		}
	}
	return pos, neg, nil
}

// quote quotes a label value as a selector does: double quotes unless the
// value holds one.
func quote(v string) string {
	if strings.Contains(v, `"`) {
		return "'" + v + "'"
	}
	return `"` + v + `"`
}

func splitPorts(ps []api.Port) (numeric []hoststate.PortRange, named []string) {
	for _, p := range ps {
		if p.PortName != "" {
			named = append(named, p.PortName)
			continue
		}
		if p.MinPort < 1 || p.MaxPort > 65535 || p.MinPort > p.MaxPort {
			continue // validation rejects these; a bad port matches nothing
		}
		numeric = append(numeric, hoststate.PortRange{First: uint16(p.MinPort), Last: uint16(p.MaxPort)})
	}
	return numeric, named
}

func protoNum(p *api.Protocol) (*uint8, error) {
	if p == nil || p.IsZero() {
		return nil, nil
	}
	n, ok := p.Number()
	if !ok {
		return nil, fmt.Errorf("protocol %q is not valid", p.String())
	}
	v := uint8(n)
	return &v, nil
}

func icmp(f *api.ICMPFields) (typ, code *uint8, err error) {
	if f.Type != nil {
		if *f.Type < 0 || *f.Type > 255 {
			return nil, nil, fmt.Errorf("icmp type %d out of range", *f.Type)
		}
		v := uint8(*f.Type)
		typ = &v
	}
	if f.Code != nil {
		if *f.Code < 0 || *f.Code > 255 {
			return nil, nil, fmt.Errorf("icmp code %d out of range", *f.Code)
		}
		v := uint8(*f.Code)
		code = &v
	}
	return typ, code, nil
}

func prefixes(nets []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range nets {
		p, ok := parseAddrOrPrefix(n)
		if !ok {
			return nil, fmt.Errorf("%q is not a network", n)
		}
		out = append(out, p)
	}
	return out, nil
}
