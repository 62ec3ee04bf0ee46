package node

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

func wep(name, node string, ips ...string) datastore.Update {
	w := &api.WorkloadEndpoint{ObjectMeta: api.ObjectMeta{Name: name, Namespace: "ns"}, Spec: api.WorkloadEndpointSpec{Node: node, IPNetworks: ips}}
	return datastore.Update{Type: datastore.Modified, Key: api.Key{Kind: "WorkloadEndpoint", Namespace: "ns", Name: name}, Object: w}
}

func affinity(name, node, cidr string) datastore.Update {
	a := &api.BlockAffinity{ObjectMeta: api.ObjectMeta{Name: name}, Spec: api.BlockAffinitySpec{Node: node, CIDR: cidr, State: api.AffinityConfirmed}}
	return datastore.Update{Type: datastore.Modified, Key: api.Key{Kind: "BlockAffinity", Name: name}, Object: a}
}

func deleted(u datastore.Update) datastore.Update { u.Type = datastore.Deleted; return u }

// TestBGPLoopKeepsOnlyLocal: the BGP loop keeps this host's endpoints'
// addresses and blocks and nothing of other hosts'; a change elsewhere
// does not ask for a recomputation; an endpoint that leaves the host
// takes its address with it.
func TestBGPLoopKeepsOnlyLocal(t *testing.T) {
	b := newBGPLoop("me", nil, nil, slog.New(slog.DiscardHandler), nil)
	pokes := func() bool {
		select {
		case <-b.trigger:
			return true
		default:
			return false
		}
	}
	b.OnStatus(datastore.InSync)
	pokes()
	steps := []struct {
		name      string
		updates   []datastore.Update
		wantPoke  bool
		blocks    string
		borrowed  string
		remembers int
	}{
		{"remote endpoints", []datastore.Update{wep("r1", "other", "10.65.9.1/32"), wep("r2", "other", "10.65.9.2/32")}, false, "[]", "[]", 0},
		{"remote affinity", []datastore.Update{affinity("a1", "other", "10.65.9.0/26")}, false, "[]", "[]", 0},
		{"own block and endpoints", []datastore.Update{affinity("a2", "me", "10.65.1.0/26"), wep("l1", "me", "10.65.1.1/32"), wep("l2", "me", "10.65.9.3/32", "fd00::3/128")}, true, "[10.65.1.0/26]", "[10.65.9.3 fd00::3]", 3},
		{"the same again", []datastore.Update{wep("l1", "me", "10.65.1.1/32")}, false, "[10.65.1.0/26]", "[10.65.9.3 fd00::3]", 3},
		{"endpoint moves away", []datastore.Update{wep("l2", "other", "10.65.9.3/32")}, true, "[10.65.1.0/26]", "[]", 2},
		{"remote endpoint deleted", []datastore.Update{deleted(wep("r1", "other"))}, false, "[10.65.1.0/26]", "[]", 2},
		{"own block released", []datastore.Update{deleted(affinity("a2", "me", "10.65.1.0/26"))}, true, "[]", "[10.65.1.1]", 1},
	}
	for _, st := range steps {
		b.OnUpdates(st.updates)
		if got := pokes(); got != st.wantPoke {
			t.Errorf("%s: recomputation asked %v, want %v", st.name, got, st.wantPoke)
		}
		in, ok := b.input()
		if !ok {
			t.Fatalf("%s: not in sync", st.name)
		}
		if got := fmt.Sprint(in.OwnedBlocks); got != st.blocks {
			t.Errorf("%s: blocks %s, want %s", st.name, got, st.blocks)
		}
		if got := fmt.Sprint(in.BorrowedIPs); got != st.borrowed {
			t.Errorf("%s: borrowed %s, want %s", st.name, got, st.borrowed)
		}
		if n := len(b.addrs) + len(b.blocks) + len(b.objects); n != st.remembers {
			t.Errorf("%s: remembers %d resources, want %d", st.name, n, st.remembers)
		}
	}
}

type recorder struct {
	kinds []string
	st    []datastore.Status
}

func (r *recorder) OnStatus(s datastore.Status) { r.st = append(r.st, s) }
func (r *recorder) OnUpdates(us []datastore.Update) {
	for _, u := range us {
		r.kinds = append(r.kinds, u.Key.Kind)
	}
}

func TestTee(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	tt := newTee()
	tt.add(a, []string{"WorkloadEndpoint", "IPPool"})
	tt.add(b, []string{"IPPool", "BGPPeer", "WorkloadEndpoint"})
	if got := fmt.Sprint(tt.kinds()); got != "[WorkloadEndpoint IPPool BGPPeer]" {
		t.Errorf("kinds %s", got)
	}
	tt.OnUpdates([]datastore.Update{{Key: api.Key{Kind: "BGPPeer"}}, {Key: api.Key{Kind: "IPPool"}}, {Key: api.Key{Kind: "WorkloadEndpoint"}}})
	tt.OnStatus(datastore.InSync)
	if fmt.Sprint(a.kinds) != "[IPPool WorkloadEndpoint]" || fmt.Sprint(b.kinds) != "[BGPPeer IPPool WorkloadEndpoint]" {
		t.Errorf("a got %v, b got %v", a.kinds, b.kinds)
	}
	if len(a.st) != 1 || len(b.st) != 1 {
		t.Errorf("status: a %v, b %v", a.st, b.st)
	}
}
