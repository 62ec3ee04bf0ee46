package bgp

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// Addresses match testdata/reflectors.yaml, which gives rr1 and rr2 their
// cluster ID and label.
const reflectorsTopo = `
hosts:
  - {name: rr1, address: 172.30.2.11/24}
  - {name: rr2, address: 172.30.2.12/24}
  - {name: c1, address: 172.30.2.21/24}
  - {name: c2, address: 172.30.2.22/24}
workloads:
  - {name: wr1, host: rr1}
  - {name: wr2, host: rr2}
  - {name: w1, host: c1}
  - {name: w2, host: c2}
`

// md5Peers makes c1 and c2 peer directly (per-node BGPPeers) with TCP MD5;
// c2's password comes from secret bgpmd5 key c2key.
func md5Peers(c2key string) string {
	return `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: c1-to-c2}
spec:
  node: c1
  peerIP: 172.30.2.22
  asNumber: 64512
  keepaliveTime: 1s
  maxRestartTime: 2s
  password: {secretKeyRef: {name: bgpmd5, key: right}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: c2-to-c1}
spec:
  node: c2
  peerIP: 172.30.2.21
  asNumber: 64512
  keepaliveTime: 1s
  maxRestartTime: 2s
  password: {secretKeyRef: {name: bgpmd5, key: ` + c2key + `}}
`
}

// TestReflectors: the mesh off and two Serval nodes as a route-reflector
// pair (Calico's documented setup: routeReflectorClusterID on the Nodes,
// one global BGPPeer whose peerSelector picks them). Clients peer only
// with the reflectors and still learn every block; per-node BGPPeers with
// TCP MD5 establish only with matching passwords; a host whose link is cut
// has its routes withdrawn within the short hold time of its BGPPeers.
func TestReflectors(t *testing.T) {
	needRoot(t)
	// The agents read BGP passwords from the environment they inherit.
	t.Setenv("SERVAL_SECRET_BGPMD5_RIGHT", "s3cret-Pass")
	t.Setenv("SERVAL_SECRET_BGPMD5_WRONG", "guessed")
	l := upLab(t, "rr", reflectorsTopo, "open.yaml", "reflectors.yaml")
	owner := map[string]string{"rr1": "wr1", "rr2": "wr2", "c1": "w1", "c2": "w2"}
	want := map[string][]string{
		"rr1": {"rr2", "c1", "c2"},
		"rr2": {"rr1", "c1", "c2"},
		"c1":  {"rr1", "rr2"},
		"c2":  {"rr1", "rr2"},
	}
	for h, peers := range want {
		got := peerInfo(t, l, h)
		for _, p := range peers {
			if s := got[hostAddr(l, p).String()]; s != "global/Established" {
				t.Errorf("%s: session to %s is %q, want global/Established (all: %v)", h, p, s, got)
			}
		}
		if len(got) != len(peers) {
			t.Errorf("%s has sessions %v, want only %v: with the mesh off, clients peer only with the reflectors", h, got, peers)
		}
		// Every block, through its owner (reflectors keep the next hop).
		for other, w := range owner {
			if other == h {
				continue
			}
			if r := route(t, l, h, block(t, l, w)); !learnedVia(r, hostAddr(l, other)) {
				t.Errorf("%s: route to %s's block: %s, want one via %s", h, other, describe(r), hostAddr(l, other))
			}
		}
	}
	if !probe(t, l, "w1", "w2") {
		t.Errorf("w1 cannot reach w2 through reflected routes")
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("per-node peers with MD5", func(t *testing.T) {
		c2 := hostAddr(l, "c2").String()
		apply(t, l, md5Peers("wrong"))
		// c1 has the session configured, node specific, and it never
		// establishes: the kernel drops segments with the wrong signature.
		eventually(t, 10*time.Second, "c1's node-specific session to c2 configured", func() error {
			if s, ok := peerInfo(t, l, "c1")[c2]; !ok || s[:len("node specific")] != "node specific" {
				return fmt.Errorf("c1 -> c2: %q", s)
			}
			return nil
		})
		start := time.Now()
		for time.Since(start) < 7*time.Second { // longer than the 5 s connect retry
			if s := peerInfo(t, l, "c1")[c2]; s == "node specific/Established" {
				t.Fatalf("c1 -> c2 established although the passwords differ")
			}
			time.Sleep(500 * time.Millisecond)
		}
		// The same passwords: it establishes, so MD5 itself works.
		apply(t, l, md5Peers("right"))
		took := eventually(t, 30*time.Second, "c1 -> c2 Established with matching passwords", func() error {
			if s := peerInfo(t, l, "c1")[c2]; s != "node specific/Established" {
				return fmt.Errorf("c1 -> c2 is %q", s)
			}
			return nil
		})
		t.Logf("established %s after the passwords matched", took.Round(time.Millisecond))
	})

	t.Run("withdrawal when a host's link is cut", func(t *testing.T) {
		// With two reflectors of one cluster, each hears the other
		// reflect c2's block; GoBGP skips RFC 4456's CLUSTER_LIST check,
		// so without the speaker's reflected-route filter one reflector
		// kept the other's copy for good (see routing.policies).
		b2 := block(t, l, "w2")
		// c2's cable is pulled: no NOTIFICATION, no FIN; its peers notice
		// when the hold time (3 keepalives of 1 s) runs out, and keep its
		// routes as stale for the 2 s restart time at most.
		if out, err := exec.Command("ip", "-n", l.Netns("c2"), "link", "set", "eth0", "down").CombinedOutput(); err != nil {
			t.Fatalf("cutting c2's link: %v: %s", err, out)
		}
		took := eventually(t, 20*time.Second, "c2's block withdrawn everywhere", func() error {
			for _, h := range []string{"rr1", "rr2", "c1"} {
				if r := route(t, l, h, b2); r != nil {
					return fmt.Errorf("%s still has %s", h, describe(r))
				}
			}
			return nil
		})
		t.Logf("c2's block withdrawn %s after its link was cut (hold time 3 s + restart time 2 s)", took.Round(time.Millisecond))
	})
}
