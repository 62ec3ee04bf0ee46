package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/servalnet/serval/internal/api"
)

// cluster is a set of Serval nodes on loopback addresses (127.0.0.x), each
// with its own BGP port, described by the same resources serval-node
// would read from the datastore.
type cluster struct {
	t       testing.TB
	nodes   []*api.Node
	configs []*api.BGPConfiguration
	peers   []*api.BGPPeer
	pools   []*api.IPPool
	filters []*api.BGPFilter
	blocks  map[string][]netip.Prefix
	secrets MapSecrets
}

func freePort(t testing.TB, ip string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", ip, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func newCluster(t testing.TB, mesh bool) *cluster {
	c := &cluster{t: t, blocks: map[string][]netip.Prefix{}, secrets: MapSecrets{}}
	c.configs = append(c.configs, &api.BGPConfiguration{
		ObjectMeta: api.ObjectMeta{Name: "default"},
		Spec:       api.BGPConfigurationSpec{NodeToNodeMeshEnabled: &mesh, BindMode: ptrTo("NodeIP")},
	})
	c.pools = append(c.pools, &api.IPPool{ObjectMeta: api.ObjectMeta{Name: "pool"}, Spec: api.IPPoolSpec{CIDR: "10.65.0.0/16"}})
	return c
}

// addNode registers a node at 127.0.0.<n> with its own listen port.
func (c *cluster) addNode(name string, n int, labels map[string]string, clusterID string) netip.Addr {
	ip := fmt.Sprintf("127.0.0.%d", n)
	c.nodes = append(c.nodes, &api.Node{
		ObjectMeta: api.ObjectMeta{Name: name, Labels: labels},
		Spec:       api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: ip + "/8", RouteReflectorClusterID: clusterID}},
	})
	c.configs = append(c.configs, &api.BGPConfiguration{
		ObjectMeta: api.ObjectMeta{Name: "node." + name},
		Spec:       api.BGPConfigurationSpec{ListenPort: freePort(c.t, ip)},
	})
	return netip.MustParseAddr(ip)
}

// peerWithReflectors adds Calico's recipe for route reflectors: every node
// peers with the nodes labelled rr=yes, and those with every node.
func (c *cluster) peerWithReflectors() {
	c.peers = append(c.peers,
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "to-rr"}, Spec: api.BGPPeerSpec{NodeSelector: "all()", PeerSelector: "rr == 'yes'"}},
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "rr-to-all"}, Spec: api.BGPPeerSpec{NodeSelector: "rr == 'yes'", PeerSelector: "all()"}},
	)
}

func (c *cluster) desired(name string) Desired {
	c.t.Helper()
	d, err := Compute(Input{
		NodeName: name, Nodes: c.nodes, BGPConfigs: c.configs, Peers: c.peers, Pools: c.pools,
		Filters: c.filters, OwnedBlocks: c.blocks[name],
	}, c.secrets)
	if err != nil {
		c.t.Fatalf("Compute(%s): %v", name, err)
	}
	return d
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SERVAL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type testSpeaker struct {
	*Speaker
	name string
	nl   *FakeNetlink
}

func (c *cluster) start(name string) *testSpeaker {
	c.t.Helper()
	return c.startWith(name, func(*Config) {})
}

// startWith starts a speaker whose Config edit changes.
func (c *cluster) startWith(name string, edit func(*Config)) *testSpeaker {
	c.t.Helper()
	nl := NewFakeNetlink()
	cfg := Config{Logger: testLogger(c.t).With("node", name), Netlink: nl, ResyncInterval: time.Second, RetryInterval: 200 * time.Millisecond}
	edit(&cfg)
	s := NewSpeaker(cfg)
	c.t.Cleanup(s.Stop)
	ts := &testSpeaker{Speaker: s, name: name, nl: nl}
	c.reconcile(ts)
	return ts
}

func (c *cluster) reconcile(ss ...*testSpeaker) {
	c.t.Helper()
	for _, s := range ss {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Reconcile(ctx, c.desired(s.name))
		cancel()
		if err != nil {
			c.t.Fatalf("Reconcile(%s): %v", s.name, err)
		}
	}
}

// eventually polls cond until it returns "" or the deadline passes; the
// last non-empty answer says what was still wrong.
func eventually(t testing.TB, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after %v: %s", within, last)
}

func established(s *testSpeaker, n int) func() string {
	return func() string {
		st, err := s.Status(context.Background())
		if err != nil {
			return err.Error()
		}
		up := 0
		for _, p := range st {
			if p.Info == "Established" {
				up++
			}
		}
		if up != n {
			return fmt.Sprintf("%s: %d of %d sessions established: %+v", s.name, up, n, st)
		}
		return ""
	}
}

func ribHas(s *testSpeaker, prefix string, nexthops ...string) func() string {
	return func() string {
		rib, err := s.RIB(context.Background())
		if err != nil {
			return err.Error()
		}
		p := netip.MustParsePrefix(prefix)
		var got []string
		for _, a := range rib[p] {
			got = append(got, a.String())
		}
		if !slices.Equal(got, nexthops) {
			return fmt.Sprintf("%s: RIB %s next hops %v, want %v", s.name, prefix, got, nexthops)
		}
		return ""
	}
}

func kernelHas(s *testSpeaker, want string) func() string {
	return func() string {
		if err := s.SyncKernel(context.Background()); err != nil {
			return err.Error()
		}
		if got := s.nl.Dump(); got != want {
			return fmt.Sprintf("%s: kernel\n%s\nwant\n%s", s.name, got, want)
		}
		return ""
	}
}

func TestSpeakerMeshAdvertiseWithdraw(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 11, nil, "")
	c.addNode("b", 12, nil, "")
	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.1.0/26")}
	a, b := c.start("a"), c.start("b")
	eventually(t, 20*time.Second, established(a, 1))
	eventually(t, 10*time.Second, established(b, 1))

	st, _ := b.Status(context.Background())
	if st[0].Address != "127.0.0.11" || st[0].Type != PeerMesh || st[0].State != "up" || st[0].Since.IsZero() {
		t.Errorf("status of b: %+v", st[0])
	}

	eventually(t, 10*time.Second, ribHas(b, "10.65.1.0/26", "127.0.0.11"))
	eventually(t, 5*time.Second, kernelHas(b, "10.65.1.0/26 via 127.0.0.11 dev#1 proto 80"))
	// a originates the block itself: nothing learned, nothing programmed.
	eventually(t, 5*time.Second, kernelHas(a, ""))
	eventually(t, 5*time.Second, func() string {
		st, _ := b.Status(context.Background())
		if len(st) != 1 || st[0].RoutesReceived != 1 {
			return fmt.Sprintf("b status %+v, want 1 route received", st)
		}
		st, _ = a.Status(context.Background())
		if len(st) != 1 || st[0].RoutesAdvertised != 1 {
			return fmt.Sprintf("a status %+v, want 1 route advertised", st)
		}
		return ""
	})

	// A second block, then the first one released.
	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.2.0/26")}
	c.reconcile(a)
	eventually(t, 10*time.Second, ribHas(b, "10.65.1.0/26"))
	eventually(t, 10*time.Second, ribHas(b, "10.65.2.0/26", "127.0.0.11"))
	eventually(t, 5*time.Second, kernelHas(b, "10.65.2.0/26 via 127.0.0.11 dev#1 proto 80"))

	// The session drops (a stops BGP): b withdraws a's routes. Graceful
	// restart keeps them stale for the restart time only when a comes
	// back; a deconfigured peer sends a Cease, so they go at once.
	c.nodes = c.nodes[1:]
	c.reconcile(b)
	eventually(t, 10*time.Second, kernelHas(b, ""))
}

func TestSpeakerECMP(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 21, nil, "")
	c.addNode("b", 22, nil, "")
	c.addNode("c", 23, nil, "")
	// Two hosts advertise the same prefix (an anycast service range).
	c.configs[0].Spec.ServiceClusterIPs = nil
	anycast := netip.MustParsePrefix("10.65.200.0/24")
	c.blocks["a"] = []netip.Prefix{anycast}
	c.blocks["b"] = []netip.Prefix{anycast}
	a, b, cc := c.start("a"), c.start("b"), c.start("c")
	_, _ = a, b
	eventually(t, 20*time.Second, established(cc, 2))
	eventually(t, 10*time.Second, ribHas(cc, "10.65.200.0/24", "127.0.0.21", "127.0.0.22"))
	eventually(t, 5*time.Second, kernelHas(cc, "10.65.200.0/24 proto 80 nexthop via 127.0.0.21 dev#1 nexthop via 127.0.0.22 dev#1"))

	// One of them withdraws: a single path remains.
	c.blocks["b"] = nil
	c.reconcile(b)
	eventually(t, 10*time.Second, kernelHas(cc, "10.65.200.0/24 via 127.0.0.21 dev#1 proto 80"))
}

func TestSpeakerRouteReflector(t *testing.T) {
	c := newCluster(t, false)
	c.addNode("rr", 31, map[string]string{"rr": "yes"}, "224.0.0.1")
	c.addNode("a", 32, nil, "")
	c.addNode("b", 33, nil, "")
	c.peerWithReflectors()
	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.3.0/26")}
	rr, a, b := c.start("rr"), c.start("a"), c.start("b")
	eventually(t, 20*time.Second, established(rr, 2))
	eventually(t, 10*time.Second, established(a, 1))
	eventually(t, 10*time.Second, established(b, 1))

	cfg, err := rr.NeighborConfig(context.Background(), netip.MustParseAddr("127.0.0.32"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.GetRouteReflector().GetRouteReflectorClient() || cfg.GetRouteReflector().GetRouteReflectorClusterId() != "224.0.0.1" {
		t.Errorf("rr's neighbor a: route reflector config %+v, want client of cluster 224.0.0.1", cfg.GetRouteReflector())
	}
	// a's route reaches b through the reflector, next hop unchanged.
	eventually(t, 10*time.Second, ribHas(b, "10.65.3.0/26", "127.0.0.32"))
	eventually(t, 5*time.Second, kernelHas(b, "10.65.3.0/26 via 127.0.0.32 dev#1 proto 80"))
	_ = a
}

func TestSpeakerGracefulRestartConfig(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 41, nil, "")
	c.addNode("b", 42, nil, "")
	c.configs[0].Spec.NodeMeshMaxRestartTime = &api.Duration{Duration: 300 * time.Second}
	a, _ := c.start("a"), c.start("b")
	eventually(t, 20*time.Second, established(a, 1))

	cfg, err := a.NeighborConfig(context.Background(), netip.MustParseAddr("127.0.0.42"))
	if err != nil {
		t.Fatal(err)
	}
	if gr := cfg.GetGracefulRestart(); !gr.GetEnabled() || gr.GetRestartTime() != 300 {
		t.Errorf("graceful restart %+v, want enabled with 300s", gr)
	}
	if len(cfg.AfiSafis) != 1 || !cfg.AfiSafis[0].GetMpGracefulRestart().GetConfig().GetEnabled() {
		t.Errorf("afi-safis %+v, want ipv4-unicast with graceful restart", cfg.AfiSafis)
	}
	// Negotiated: the peer advertised the capability back.
	if st := cfg.GetState(); st == nil || len(st.RemoteCap) == 0 {
		t.Errorf("no remote capabilities in %+v", st)
	}
}

// md5Supported reports whether this kernel lets a listening socket carry
// a TCP MD5 key. It refuses with ENOPROTOOPT on MPTCP sockets, which Go
// listeners are by default unless multipathtcp=0 (see godebug_test.go); a
// kernel without CONFIG_TCP_MD5SIG refuses the same way.
func md5Supported(t *testing.T) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	sc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return err
	}
	sig := unix.TCPMD5Sig{Keylen: 3}
	sig.Addr.Family = unix.AF_INET
	copy(sig.Addr.Data[2:], []byte{127, 0, 0, 2})
	copy(sig.Key[:], "abc")
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
	}); err != nil {
		return err
	}
	return serr
}

func TestSpeakerMD5(t *testing.T) {
	if err := md5Supported(t); err != nil {
		// BGPPeer.password depends on it: a kernel without it is a
		// missing dependency (CONFIG_TCP_MD5SIG), not a reason to pass.
		t.Fatalf("TCP MD5 signatures are not available in this kernel (setsockopt TCP_MD5SIG: %v): BGPPeer.password needs CONFIG_TCP_MD5SIG", err)
	}
	c := newCluster(t, true)
	c.addNode("a", 43, nil, "")
	c.addNode("b", 44, nil, "")
	c.configs[0].Spec.NodeMeshPassword = &api.BGPPassword{SecretKeyRef: &api.SecretKeySelector{Name: "bgp", Key: "mesh"}}
	c.secrets["bgp/mesh"] = "s3cret"
	a, b := c.start("a"), c.start("b")
	eventually(t, 20*time.Second, established(a, 1))
	cfg, err := a.NeighborConfig(context.Background(), netip.MustParseAddr("127.0.0.44"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GetConf().GetAuthPassword() != "s3cret" {
		t.Errorf("password %q, want the secret", cfg.GetConf().GetAuthPassword())
	}

	// b now has another password: the session goes down and stays down.
	c.secrets["bgp/mesh"] = "other"
	c.reconcile(b)
	c.secrets["bgp/mesh"] = "s3cret"
	time.Sleep(4 * time.Second) // several connect attempts
	if msg := established(a, 0)(); msg != "" {
		t.Fatalf("with mismatched passwords: %s", msg)
	}
	// The same password again: it comes back.
	c.reconcile(b)
	eventually(t, 20*time.Second, established(a, 1))
}

func TestSpeakerStatusTypes(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 51, nil, "")
	c.addNode("b", 52, nil, "")
	// An external router that does not exist: the session stays Active.
	c.peers = append(c.peers,
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "tor"}, Spec: api.BGPPeerSpec{PeerIP: "127.0.0.59:1179", ASNumber: asn(65001)}},
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "a-only"}, Spec: api.BGPPeerSpec{Node: "a", PeerIP: "127.0.0.58", ASNumber: asn(65002)}},
	)
	a := c.start("a")
	st, err := a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range st {
		got = append(got, fmt.Sprintf("%s:%d %s %s", p.Address, p.Port, p.Type, p.State))
	}
	want := []string{"127.0.0.52:" + fmt.Sprint(c.desired("b").ListenPort) + " node-to-node mesh start", "127.0.0.58:179 node specific start", "127.0.0.59:1179 global start"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("status\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSpeakerLifecycle(t *testing.T) {
	c := newCluster(t, true)
	c.addNode("a", 81, nil, "")
	c.addNode("b", 82, nil, "")
	a, b := c.start("a"), c.start("b")
	eventually(t, 20*time.Second, established(a, 1))

	// A new AS restarts the server; the session comes back (b learns
	// a's new AS through the same Node resources).
	c.nodes[0].Spec.BGP.ASNumber = asn(65099)
	c.reconcile(a, b)
	eventually(t, 20*time.Second, established(b, 1))
	st, _ := b.Status(context.Background())
	if st[0].ASN != 65099 {
		t.Errorf("b sees AS %d, want 65099", st[0].ASN)
	}

	// Not a speaker any more: the server stops.
	c.nodes[0].Spec.BGP = nil
	c.reconcile(a)
	if st, err := a.Status(context.Background()); err != nil || len(st) != 0 {
		t.Errorf("disabled speaker status %v, %v", st, err)
	}
	a.Stop()
	a.Stop() // idempotent
	if err := a.Reconcile(context.Background(), c.desired("b")); err != ErrStopped {
		t.Errorf("Reconcile after Stop: %v, want ErrStopped", err)
	}
}

// TestSpeakerReflectorPairWithdraws: two reflectors of one cluster (Calico's
// redundant setup). Each also hears the other reflect its clients' routes;
// when a client goes away both must forget its block, not keep the copy
// the other reflector once sent.
func TestSpeakerReflectorPairWithdraws(t *testing.T) {
	c := newCluster(t, false)
	c.addNode("rr1", 51, map[string]string{"rr": "yes"}, "224.0.0.9")
	c.addNode("rr2", 52, map[string]string{"rr": "yes"}, "224.0.0.9")
	c.addNode("c1", 53, nil, "")
	c.addNode("c2", 54, nil, "")
	c.peerWithReflectors()
	c.blocks["c2"] = []netip.Prefix{netip.MustParsePrefix("10.65.54.0/26")}
	rr1, rr2, c1, c2 := c.start("rr1"), c.start("rr2"), c.start("c1"), c.start("c2")
	eventually(t, 20*time.Second, established(rr1, 3))
	eventually(t, 20*time.Second, established(rr2, 3))
	eventually(t, 10*time.Second, established(c1, 2))
	for _, s := range []*testSpeaker{rr1, rr2, c1} {
		eventually(t, 10*time.Second, ribHas(s, "10.65.54.0/26", "127.0.0.54"))
	}
	c2.Stop()
	for _, s := range []*testSpeaker{rr1, rr2, c1} {
		eventually(t, 15*time.Second, ribHas(s, "10.65.54.0/26"))
	}
}

// TestPolicies: which sessions the reflected-route filter applies to.
func TestPolicies(t *testing.T) {
	a := netip.MustParseAddr
	client := func(ip string) Peer { return Peer{Address: a(ip), PeerNode: "n" + ip, RRClient: true} }
	reflector := func(ip string) Peer { return Peer{Address: a(ip), PeerNode: "n" + ip} }
	router := Peer{Address: a("10.0.0.1")} // external: no PeerNode
	for _, tc := range []struct {
		name    string
		d       Desired
		want    []netip.Addr // re-filtered when the filter changes
		filters int          // statements in the import policy
	}{
		{"plain node", Desired{Peers: []Peer{reflector("10.0.0.2"), reflector("10.0.0.3")}}, nil, 0},
		{"reflector pair", Desired{ClusterID: "1.1.1.1", Peers: []Peer{reflector("10.0.0.2"), client("10.0.0.3"), client("fd00::3"), router}}, []netip.Addr{a("10.0.0.2")}, 1},
		{"reflector without clients", Desired{ClusterID: "1.1.1.1", Peers: []Peer{reflector("10.0.0.2")}}, []netip.Addr{a("10.0.0.2")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _, got := policies(tc.d)
			if !slices.Equal(got, tc.want) {
				t.Errorf("import filter applies to %v, want %v", got, tc.want)
			}
			filters := 0
			for _, p := range req.Policies {
				if p.Name == importPolicy {
					filters += len(p.Statements)
				}
			}
			if filters != tc.filters {
				t.Errorf("%d reflected-route filters, want %d", filters, tc.filters)
			}
		})
	}
}

// TestSpeakerNextHopMode: a BGPPeer's nextHopMode Self makes a reflector
// put itself as the next hop of what it reflects to the peers it names,
// while the peers of another BGPPeer (Auto) keep the originator's.
func TestSpeakerNextHopMode(t *testing.T) {
	c := newCluster(t, false)
	c.addNode("rr", 61, map[string]string{"rr": "yes"}, "224.0.0.2")
	c.addNode("a", 62, map[string]string{"group": "a"}, "")
	c.addNode("b", 63, map[string]string{"group": "b"}, "")
	c.addNode("d", 64, map[string]string{"group": "d"}, "")
	c.peers = append(c.peers,
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "to-rr"}, Spec: api.BGPPeerSpec{NodeSelector: "all()", PeerSelector: "rr == 'yes'"}},
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "rr-to-ad"}, Spec: api.BGPPeerSpec{NodeSelector: "rr == 'yes'", PeerSelector: "group in {'a', 'd'}"}},
		&api.BGPPeer{ObjectMeta: api.ObjectMeta{Name: "rr-to-b"}, Spec: api.BGPPeerSpec{NodeSelector: "rr == 'yes'", PeerSelector: "group == 'b'", NextHopMode: ptrTo("Self")}},
	)
	c.blocks["a"] = []netip.Prefix{netip.MustParsePrefix("10.65.62.0/26")}
	rr, b, d := c.start("rr"), c.start("b"), c.start("d")
	c.start("a")
	eventually(t, 20*time.Second, established(rr, 3))
	eventually(t, 10*time.Second, ribHas(b, "10.65.62.0/26", "127.0.0.61"))
	eventually(t, 10*time.Second, ribHas(d, "10.65.62.0/26", "127.0.0.62"))
}
