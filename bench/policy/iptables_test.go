package policy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The linear-chain series: the same namespaces, the same load, but the
// host has no Serval table. It is routed by hand as internal/dataplane
// would route it (a /32 route per workload, proxy ARP answering at once,
// forwarding on), and its firewall is iptables' FORWARD chain, a list
// walked rule by rule:
//
//	-P FORWARD DROP
//	-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
//	-A FORWARD -s 10.70.S.0/27 -d 10.65.0.2/32 -p tcp --dport 1000+i -j ACCEPT   (n rules, i = 0..n-1)
//	-A FORWARD -s 10.65.0.1/32 -d 10.65.0.2/32 -p tcp --dport 8080 -j ACCEPT
//
// The n rules mirror the policies' rules (a source group, one port) and
// none matches w1's traffic, so every new connection's SYN walks all of
// them before the accept, while every later packet stops at the conntrack
// rule: the same shortcut Serval's table takes.

// iptablesRestore returns the iptables-restore the series loads its rules
// with and how `-V` names it. The default is iptables-nft, Debian's
// default: it programs the same nftables engine Serval's table runs in, so
// the two curves differ only in the rules' layout (one rule per policy,
// walked in order, against sets and verdict maps). SERVAL_BENCH_IPTABLES
// =legacy uses the x_tables one instead.
func iptablesRestore() (bin, version string, err error) {
	bin = "iptables-nft-restore"
	ver := "iptables-nft"
	if os.Getenv("SERVAL_BENCH_IPTABLES") == "legacy" {
		bin, ver = "iptables-legacy-restore", "iptables-legacy"
	}
	if _, err := exec.LookPath(bin); err != nil {
		return "", "", fmt.Errorf("%s: %w (install the Debian package iptables)", bin, err)
	}
	out, err := exec.Command(ver, "-V").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("%s -V: %w: %s", ver, err, out)
	}
	return bin, strings.TrimSpace(string(out)), nil
}

// iptablesRules is the FORWARD chain described above, in
// iptables-restore's format.
func iptablesRules(n int) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	b.WriteString("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "-A FORWARD -s 10.70.%d.%d/27 -d 10.65.0.2/32 -p tcp -m tcp --dport %d -j ACCEPT\n", i%50, (i/50%8)*32, 1000+i)
	}
	b.WriteString("-A FORWARD -s 10.65.0.1/32 -d 10.65.0.2/32 -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT\n")
	return b.Bytes()
}

// newIptablesTopo builds the namespaces with the host routed by hand and
// n rules ahead of the accept in its FORWARD chain; it returns the time
// iptables-restore took.
func newIptablesTopo(t testing.TB, n int) (*topo, time.Duration) {
	bin, version, err := iptablesRestore()
	if err != nil {
		t.Fatalf("%v (scripts/install-deps.sh installs iptables)", err)
	}
	pre, _, w1, w2 := namespaces(t)
	hostNS := pre + "-host"
	sh(t, hostNS, "sysctl -qw net.ipv4.ip_forward=1 "+
		"net.ipv4.conf.cali1.proxy_arp=1 net.ipv4.conf.cali2.proxy_arp=1 "+
		"net.ipv4.neigh.cali1.proxy_delay=0 net.ipv4.neigh.cali2.proxy_delay=0 && "+
		"ip route add 10.65.0.1/32 dev cali1 scope link && ip route add 10.65.0.2/32 dev cali2 scope link")
	cmd := exec.Command("ip", "netns", "exec", hostNS, bin)
	cmd.Stdin = bytes.NewReader(iptablesRules(n))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s with %d rules in %s: %v: %s", bin, n, hostNS, err, out)
	}
	took := time.Since(start)
	t.Logf("%s: %d rules ahead of the accept, loaded in %v", version, n, took.Round(time.Millisecond))
	return &topo{w1: w1, w2: w2, hostName: hostNS}, took
}

func TestIptablesRules(t *testing.T) {
	got := string(iptablesRules(3))
	for _, want := range []string{
		":FORWARD DROP",
		"-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A FORWARD -s 10.70.0.0/27",
		"-s 10.70.2.0/27 -d 10.65.0.2/32 -p tcp -m tcp --dport 1002 -j ACCEPT\n-A FORWARD -s 10.65.0.1/32 -d 10.65.0.2/32 -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q:\n%s", want, got)
		}
	}
	if c := strings.Count(string(iptablesRules(5000)), "-j ACCEPT\n"); c != 5002 {
		t.Errorf("5,000 rules: %d accepts, want 5,000 + the conntrack rule + the final accept", c)
	}
}
