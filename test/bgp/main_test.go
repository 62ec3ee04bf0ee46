package bgp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/labtest"
	"github.com/servalnet/serval/internal/netconst"
	"github.com/servalnet/serval/internal/node"
)

var (
	binDir string // serval-node, servalctl, serval, serval-ipam, built once
	repo   string
)

func TestMain(m *testing.M) {
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-node"}
	os.Exit(labtest.Main(m, "bgp", cmds, func(dir, root string) error {
		binDir, repo = dir, root
		return nil
	}))
}

var needRoot = labtest.NeedRoot

// labName is "bgp" + base + a random suffix: labs of parallel runs and of
// other people never share a namespace.
func labName(base string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "bgp" + base + hex.EncodeToString(b)
}

// upLab brings up topo (YAML without the name) with manifests from
// testdata, and removes it when the test ends. The run directory is the
// default /run/serval-lab (the FRR daemons, which drop to the frr user,
// could not enter a test's private temporary directory).
func upLab(t *testing.T, base, topo string, manifests ...string) *lab.Lab {
	t.Helper()
	name := labName(base)
	var b strings.Builder
	b.WriteString(topo)
	if len(manifests) > 0 {
		b.WriteString("manifests:\n")
		for _, m := range manifests {
			fmt.Fprintf(&b, "  - %s\n", filepath.Join(repo, "test", "bgp", "testdata", m))
		}
	}
	opts := lab.Options{BinDir: binDir, Logger: labtest.Logger(t, slog.LevelWarn)}
	return labtest.Up(t, name, b.String(), opts, 90*time.Second)
}

// status is `servalctl node status -o json` on host, as an operator runs it.
func status(t *testing.T, l *lab.Lab, host string) node.StatusReport {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "servalctl"), "node", "status", "--socket", l.AgentSocket(host), "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("servalctl node status on %s: %v\n%s", host, err, out)
	}
	var rep node.StatusReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("servalctl node status on %s: %v\n%s", host, err, out)
	}
	if rep.BGP == nil {
		t.Fatalf("servalctl node status on %s: no BGP section\n%s", host, out)
	}
	return rep
}

// peerInfo maps peer address to "type/info" for host.
func peerInfo(t *testing.T, l *lab.Lab, host string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range status(t, l, host).BGP.Peers {
		m[p.Address] = string(p.Type) + "/" + p.Info
	}
	return m
}

// hostAddr is host's fabric address without the prefix length.
func hostAddr(l *lab.Lab, host string) netip.Addr {
	p := netip.MustParsePrefix(l.State.Topology.Host(host).Address)
	return p.Addr()
}

// block is the /26 block (the default pool's block size) of workload w.
func block(t *testing.T, l *lab.Lab, w string) netip.Prefix {
	t.Helper()
	ws := l.State.Workloads[w]
	if ws == nil {
		t.Fatalf("workload %s was not created", w)
	}
	return netip.PrefixFrom(netip.MustParseAddr(ws.IP), 26).Masked()
}

// route is host's main-table route for exactly dst, nil when there is none.
func route(t *testing.T, l *lab.Lab, host string, dst netip.Prefix) *netlink.Route {
	t.Helper()
	var found *netlink.Route
	err := lab.InNetns(l.Netns(host), func() error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for i, r := range routes {
			d := netip.MustParsePrefix("0.0.0.0/0")
			if r.Dst != nil {
				ones, _ := r.Dst.Mask.Size()
				a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
				d = netip.PrefixFrom(a, ones)
			}
			if d == dst {
				found = &routes[i]
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the routes of %s: %v", host, err)
	}
	return found
}

// learnedVia says whether r is a route Serval learned by BGP (its protocol)
// through gateway gw.
func learnedVia(r *netlink.Route, gw netip.Addr) bool {
	return r != nil && r.Protocol == netconst.RouteProtocol && r.Gw != nil && r.Gw.Equal(net.IP(gw.AsSlice()))
}

// nexthops lists r's gateways, sorted, when it is one of Serval's routes
// (a single gateway or an ECMP set), nil otherwise.
func nexthops(r *netlink.Route) []string {
	if r == nil || r.Protocol != netconst.RouteProtocol {
		return nil
	}
	var out []string
	if r.Gw != nil {
		out = append(out, r.Gw.String())
	}
	for _, nh := range r.MultiPath {
		if nh.Gw != nil {
			out = append(out, nh.Gw.String())
		}
	}
	sort.Strings(out)
	return out
}

func describe(r *netlink.Route) string {
	if r == nil {
		return "no route"
	}
	return fmt.Sprintf("%s via %v proto %d", r.Dst, r.Gw, r.Protocol)
}

// eventually polls fn every 200ms until it returns nil or timeout passes;
// it returns how long that took.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = fn(); err == nil {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s: %v", what, timeout, err)
	return 0
}

// probe says whether from reaches to over TCP.
func probe(t *testing.T, l *lab.Lab, from, to string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := l.Probe(ctx, from, to, lab.ProbeSpec{Proto: "tcp", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("probe %s -> %s: %v", from, to, err)
	}
	return ok
}

// apply runs servalctl apply with yaml.
func apply(t *testing.T, l *lab.Lab, yaml string) {
	t.Helper()
	if out, err := l.Servalctl(context.Background(), []byte(yaml), "apply", "-f", "-"); err != nil {
		t.Fatalf("servalctl apply: %v\n%s", err, out)
	}
}

var errNotYet = errors.New("not yet")
