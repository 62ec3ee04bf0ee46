package api

import (
	"net/netip"
	"strings"
	"testing"
)

func TestIPAMNames(t *testing.T) {
	long := strings.Repeat("n", 250)
	cases := []struct {
		got, want string
	}{
		{IPAMBlockName(netip.MustParsePrefix("10.65.0.0/26")), "10-65-0-0-26"},
		{IPAMBlockName(netip.MustParsePrefix("fd00::40/122")), "fd00-0000-0000-0000-0000-0000-0000-0040-122"},
		{IPAMBlockName(netip.MustParsePrefix("::/122")), "0000-0000-0000-0000-0000-0000-0000-0000-122"},
		{BlockAffinityName("host1.example", netip.MustParsePrefix("10.65.0.64/26")), "host1.example-10-65-0-64-26"},
		{BlockAffinityName(long, netip.MustParsePrefix("10.65.0.64/26")), "a-" + shortHash(long) + "-10-65-0-64-26"},
		{IPAMHandleName("serval-net.0123abcd"), "serval-net.0123abcd"},
		{IPAMHandleName("My_Net.0123"), "h-" + shortHash("My_Net.0123")},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
		if msg := CheckDNS1123Subdomain(c.got); msg != "" {
			t.Errorf("%q is not a valid name: %s", c.got, msg)
		}
	}
}

func newBlock(cidr string, edit func(*IPAMBlockSpec)) *IPAMBlock {
	p := netip.MustParsePrefix(cidr)
	n := BlockSize(p)
	b := &IPAMBlock{TypeMeta: TypeMeta{Kind: "IPAMBlock", APIVersion: APIVersion},
		ObjectMeta: ObjectMeta{Name: IPAMBlockName(p)},
		Spec:       IPAMBlockSpec{CIDR: cidr, Allocations: make([]*int, n), Affinity: ptr("host:node1")}}
	for i := range n {
		b.Spec.Unallocated = append(b.Spec.Unallocated, i)
	}
	if edit != nil {
		edit(&b.Spec)
	}
	return b
}

func TestIPAMBlockValidate(t *testing.T) {
	h := "h1"
	allocate := func(s *IPAMBlockSpec) { // ordinal 0 held by attribute 0
		s.Attributes = []AllocationAttribute{{HandleID: &h}}
		s.Allocations[0] = ptr(0)
		s.Unallocated = s.Unallocated[1:]
	}
	cases := []struct {
		name string
		b    *IPAMBlock
		bad  []string // parts of the expected problems, none when valid
	}{
		{"fresh v4", newBlock("10.65.0.0/26", nil), nil},
		{"fresh v6", newBlock("fd00::/122", nil), nil},
		{"one allocated", newBlock("10.65.0.0/26", allocate), nil},
		{"unaffine", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) { s.Affinity = nil }), nil},
		{"bad affinity", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) { s.Affinity = ptr("node1") }),
			[]string{`spec.affinity: "node1" is not a valid affinity`}},
		{"name mismatch", func() *IPAMBlock { b := newBlock("10.65.0.0/30", nil); b.Name = "10-65-0-4-30"; return b }(),
			[]string{`metadata.name: "10-65-0-4-30" does not match spec.cidr (want "10-65-0-0-30")`}},
		{"host bits", func() *IPAMBlock { b := newBlock("10.65.0.0/30", nil); b.Spec.CIDR = "10.65.0.1/30"; return b }(),
			[]string{`spec.cidr: "10.65.0.1/30" is not a strictly masked network`}},
		{"too large", &IPAMBlock{ObjectMeta: ObjectMeta{Name: "x"}, Spec: IPAMBlockSpec{CIDR: "10.0.0.0/8"}},
			[]string{`spec.cidr: "10.0.0.0/8" is too large for a block`}},
		{"missing cidr", &IPAMBlock{}, []string{"spec.cidr: is required"}},
		{"short allocations", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) { s.Allocations = s.Allocations[:3] }),
			[]string{"spec.allocations: has 3 entries, want 4"}},
		{"attribute out of range", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) {
			allocate(s)
			s.Allocations[0] = ptr(1)
		}), []string{`spec.allocations[0]: "1" is not an index into attributes (0-0)`}},
		{"allocated listed free", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) {
			allocate(s)
			s.Unallocated = append(s.Unallocated, 0)
		}), []string{`spec.unallocated[3]: "0" is allocated, so it cannot be free`}},
		{"free listed twice", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) { s.Unallocated[1] = 0 }),
			[]string{`spec.unallocated[1]: "0" is listed twice`}},
		{"ordinal out of range", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) { s.Unallocated[3] = 4 }),
			[]string{`spec.unallocated[3]: "4" is not an ordinal of the block (0-3)`}},
		{"free not listed", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) { s.Unallocated = s.Unallocated[1:] }),
			[]string{"spec.unallocated: lists 3 free ordinals, but 4 addresses are free"}},
		{"empty handle", newBlock("10.65.0.0/30", func(s *IPAMBlockSpec) {
			s.Attributes = []AllocationAttribute{{HandleID: ptr("")}}
		}), []string{"spec.attributes[0].handle_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkProblems(t, c.b.Validate(), c.bad)
		})
	}
}

func checkProblems(t *testing.T, errs ErrorList, want []string) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("problems %v, want %d: %q", errs, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d is %q, want it to contain %q", i, errs[i].Error(), w)
		}
	}
}

func TestBlockAffinityAndHandleValidate(t *testing.T) {
	cidr := netip.MustParsePrefix("10.65.0.64/26")
	aff := func(name, node, c string, st AffinityState) *BlockAffinity {
		return &BlockAffinity{ObjectMeta: ObjectMeta{Name: name}, Spec: BlockAffinitySpec{Node: node, CIDR: c, State: st}}
	}
	good := BlockAffinityName("node1", cidr)
	hd := func(name, id string, blocks map[string]int) *IPAMHandle {
		return &IPAMHandle{ObjectMeta: ObjectMeta{Name: name}, Spec: IPAMHandleSpec{HandleID: id, Block: blocks}}
	}
	cases := []struct {
		name string
		r    Resource
		bad  []string
	}{
		{"affinity ok", aff(good, "node1", "10.65.0.64/26", AffinityConfirmed), nil},
		{"affinity pending", aff(good, "node1", "10.65.0.64/26", AffinityPending), nil},
		{"affinity bad state", aff(good, "node1", "10.65.0.64/26", "gone"), []string{`spec.state: "gone" is not one of pending, confirmed, pendingDeletion`}},
		{"affinity wrong name", aff("node2-10-65-0-64-26", "node1", "10.65.0.64/26", AffinityConfirmed),
			[]string{`metadata.name: "node2-10-65-0-64-26" does not match spec.node and spec.cidr (want "node1-10-65-0-64-26")`}},
		{"affinity missing", aff("x", "", "", AffinityConfirmed), []string{"spec.node: is required", "spec.cidr: is required"}},
		{"affinity bad node", aff("x", "Node_1", "10.65.0.64/26", AffinityConfirmed), []string{`spec.node: "Node_1" is not a valid name`, `metadata.name: "x" does not match`}},
		{"handle ok", hd("h1", "h1", map[string]int{"10.65.0.64/26": 2}), nil},
		{"handle hashed", hd(IPAMHandleName("Net_1.abc"), "Net_1.abc", nil), nil},
		{"handle wrong name", hd("h2", "h1", nil), []string{`metadata.name: "h2" does not match spec.handleID (want "h1")`}},
		{"handle bad counts", hd("h1", "h1", map[string]int{"10.65.0.64/26": 0, "10.65.0.1/26": 1}),
			[]string{`spec.block["10.65.0.1/26"]: "10.65.0.1/26" is not a strictly masked network`, `spec.block["10.65.0.64/26"]: "0" is not a positive count`}},
		{"handle missing id", hd("h1", "", nil), []string{"spec.handleID: is required"}},
		{"reservation ok", &IPReservation{Spec: IPReservationSpec{ReservedCIDRs: []string{"10.65.0.1", "fd00::/120", "10.65.1.7/24"}}}, nil},
		{"reservation bad", &IPReservation{Spec: IPReservationSpec{ReservedCIDRs: []string{"10.65.0.300"}}},
			[]string{`spec.reservedCIDRs[0]: "10.65.0.300" is not a valid IP address or CIDR`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkProblems(t, c.r.Validate(), c.bad)
		})
	}
}

func TestIPAMKindsAreInternal(t *testing.T) {
	for _, k := range []string{"IPAMBlock", "BlockAffinity", "IPAMHandle"} {
		info, ok := LookupKind(k)
		if !ok || !info.Internal {
			t.Errorf("%s: registered %v, internal %v; want an internal kind", k, ok, info.Internal)
		}
	}
	if info, ok := LookupKind("ipreservations"); !ok || info.Internal {
		t.Errorf("IPReservation: registered %v, internal %v; want a user kind", ok, info.Internal)
	}
}
