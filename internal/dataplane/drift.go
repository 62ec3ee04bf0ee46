package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Drift repair. A rule's comment carries the hash of what Serval meant it
// to be, but anyone with nft can replace a rule's expressions and keep its
// comment ("nft replace rule ... comment <hash>"). So the periodic resync
// also compares every rule's content: the backend reads each rule's
// expressions back and gives a fingerprint of them (ChainState.Content),
// and the dataplane compares it with the fingerprint of the rule it wants
// there, made the same way from the rule the backend would write. A rule
// whose content differs counts as not there: the planner rewrites its
// chain. Sets and maps are compared element by element already.

// fingerprinter is implemented by a backend that reads rule content back:
// fingerprint gives the fingerprint of the rule as it would program it.
type fingerprinter interface {
	fingerprint(r *rule) (string, error)
}

// driftMark is the hash the planner sees for a rule whose content differs
// from its comment's promise; no real hash is empty or this.
const driftMark = "drift"

// markDrift compares the content of the chains read back with the desired
// chains whose hashes match, and marks the rules that differ. It returns
// the number of chains found changed.
func (d *Dataplane) markDrift(s *Snapshot) int {
	fp, ok := d.nft.(fingerprinter)
	if !ok {
		return 0
	}
	cache := make(map[string]string, len(d.fpCache))
	changed := 0
	for name, hc := range s.Chains {
		w, wh := d.chains[name], d.hashes[name]
		if w == nil || len(hc.Content) != len(hc.Hashes) || !slices.Equal(hc.Hashes, wh) {
			continue // missing or different already: the planner rewrites it
		}
		for i := range w.Rules {
			want, ok := d.fpCache[wh[i]]
			if !ok {
				var err error
				if want, err = fp.fingerprint(&w.Rules[i]); err != nil {
					d.log.Warn("cannot fingerprint a rule; its content is not checked", "chain", name, "rule", i, "err", err)
					continue
				}
			}
			cache[wh[i]] = want
			if hc.Content[i] != want {
				d.log.Warn("nftables rule changed behind Serval's back (its comment kept); rewriting the chain",
					"chain", name, "rule", i, "hash", wh[i])
				hc.Hashes = slices.Clone(hc.Hashes)
				hc.Hashes[i] = driftMark
				changed++
				break
			}
		}
	}
	d.fpCache = cache
	return changed
}

// --- kernel backend ---

// fingerprint implements fingerprinter: the rule is built as Apply builds
// it, against a recording connection, and fingerprinted like a rule read
// back.
func (k *KernelNFT) fingerprint(r *rule) (string, error) {
	rc := &recordConn{anon: map[string][]nftables.SetElement{}, kinds: map[string]*nftables.Set{}}
	ex, err := (&builder{c: rc}).exprs(r)
	if err != nil {
		return "", err
	}
	return exprsFingerprint(ex, func(name string) (*nftables.Set, []nftables.SetElement, error) {
		return rc.kinds[name], rc.anon[name], nil
	})
}

// readContent fingerprints a rule read back from the kernel; anonymous
// sets are looked up by name among the table's sets.
func readContent(c Conn, anon map[string]*nftables.Set, r *nftables.Rule) (string, error) {
	return exprsFingerprint(r.Exprs, func(name string) (*nftables.Set, []nftables.SetElement, error) {
		s := anon[name]
		if s == nil {
			return nil, nil, fmt.Errorf("anonymous set %s not found", name)
		}
		es, err := c.GetSetElements(s)
		return s, es, err
	})
}

// exprsFingerprint is a hash of the expressions' netlink encoding, with
// each anonymous set's name replaced by its type and sorted elements (the
// names differ between the rule written and the rule read back).
func exprsFingerprint(ex []expr.Any, anonSet func(name string) (*nftables.Set, []nftables.SetElement, error)) (string, error) {
	h := sha256.New()
	for _, e := range ex {
		if l, ok := e.(*expr.Lookup); ok && strings.HasPrefix(l.SetName, "__set") {
			s, es, err := anonSet(l.SetName)
			if err != nil {
				return "", err
			}
			c := *l
			c.SetName, c.SetID = "", 0
			b, err := expr.Marshal(byte(nftables.TableFamilyINet), &c)
			if err != nil {
				return "", err
			}
			h.Write(b)
			h.Write([]byte(anonSetText(s, es)))
			continue
		}
		b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			return "", fmt.Errorf("encoding %T: %w", e, err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

func anonSetText(s *nftables.Set, es []nftables.SetElement) string {
	parts := make([]string, 0, len(es))
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%x-%x-%v", e.Key, e.KeyEnd, e.IntervalEnd))
	}
	slices.Sort(parts)
	kt := ""
	if s != nil {
		kt = fmt.Sprintf("%s/%v", s.KeyType.Name, s.Interval)
	}
	return "{" + kt + ":" + strings.Join(parts, ",") + "}"
}

// recordConn is a Conn that only records the anonymous sets a rule's
// expressions create (fingerprint uses it; nothing reaches the kernel).
type recordConn struct {
	Conn
	n     int
	anon  map[string][]nftables.SetElement
	kinds map[string]*nftables.Set
}

func (c *recordConn) AddSet(s *nftables.Set, vals []nftables.SetElement) error {
	c.n++
	s.Name = fmt.Sprintf("__set%d", c.n)
	c.anon[s.Name] = vals
	c.kinds[s.Name] = s
	return nil
}

// --- fake backend ---

// fingerprint implements fingerprinter for the fake: a rule's content is
// its text.
func (f *FakeNFT) fingerprint(r *rule) (string, error) { return r.text(), nil }
