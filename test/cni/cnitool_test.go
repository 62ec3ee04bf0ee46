package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/cli"
)

// TestCnitool is the new user's path: a network configuration file with
// "type": "serval" and "ipam": {"type": "serval-ipam"} in a directory,
// the plugins on CNI_PATH, and `cnitool add serval NETNS` for several
// namespaces, then `cnitool del`. Every namespace must get a distinct
// address from a block of this host, `servalctl ipam show` must agree,
// and a broken configuration must fail with the plugin's CNI error.
func TestCnitool(t *testing.T) {
	requireRoot(t)
	h := newHost(t)
	netDir := t.TempDir()
	writeConf := func(file string, l []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(netDir, file), l, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf("10-serval.conflist", h.netConf(t, "1.0.0", "serval", "", "").Bytes)
	writeConf("20-broken.conflist", h.netConf(t, "1.0.0", "broken", "", `,"ipv4_pools":["no-such-pool"]`).Bytes)

	// cnitool runs in the namespace that plays the host, as a runtime
	// would run it on the host.
	cnitool := func(args ...string) (stdout, stderr string, err error) {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", h.name, filepath.Join(toolDir, "cnitool")}, args...)...)
		cmd.Env = append(os.Environ(), "NETCONFPATH="+netDir, "CNI_PATH="+binDir)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}
	before := poolInUse(t, poolV4)

	const n = 4
	nss := make([]string, n)
	addrs := make([]netip.Addr, n)
	seen := map[netip.Addr]bool{}
	for i := range nss {
		name, _ := newNS(t, "tool")
		nss[i] = "/run/netns/" + name
		out, errOut, err := cnitool("add", "serval", nss[i])
		if err != nil {
			t.Fatalf("cnitool add serval %s: %v\n%s%s", nss[i], err, out, errOut)
		}
		t.Cleanup(func() { _, _, _ = cnitool("del", "serval", nss[i]) })
		var res struct {
			IPs []struct{ Address string } `json:"ips"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 {
			t.Fatalf("cnitool add printed %q (%v), want a result with one address", out, err)
		}
		p, err := netip.ParsePrefix(res.IPs[0].Address)
		if err != nil || p.Bits() != 32 || !netip.MustParsePrefix(poolV4).Contains(p.Addr()) {
			t.Fatalf("address %q: want a /32 from %s", res.IPs[0].Address, poolV4)
		}
		if seen[p.Addr()] {
			t.Fatalf("%s handed out twice: %v", p.Addr(), addrs[:i])
		}
		seen[p.Addr()] = true
		addrs[i] = p.Addr()
		// The namespace really has it.
		ip, err := exec.Command("ip", "-n", name, "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(ip), " "+p.String()+" ") {
			t.Errorf("eth0 in %s: %v\n%s\nwant %s", name, err, ip, p)
		}
	}

	// servalctl agrees: each address is in use in a block of this host,
	// and the pool counts exactly the new ones.
	for _, a := range addrs {
		out, code := servalctlOut(t, "ipam", "show", "--ip", a.String())
		if code != 0 || !strings.Contains(out, "is in use, held by handle") || !strings.Contains(out, "(host "+nodeName+")") {
			t.Errorf("servalctl ipam show --ip %s (exit %d):\n%s\nwant in use in a block of host %s", a, code, out, nodeName)
		}
	}
	if got := poolInUse(t, poolV4); got != before+n {
		t.Errorf("servalctl ipam show: %d in use in %s, want %d (%d before, %d added)", got, poolV4, before+n, before, n)
	}

	// A broken configuration is refused with the plugin's own message.
	bad, _ := newNS(t, "tool")
	out, errOut, err := cnitool("add", "broken", "/run/netns/"+bad)
	if err == nil || !strings.Contains(out+errOut, "no-such-pool") {
		t.Errorf("cnitool add broken: %v, output:\n%s%s\nwant a failure naming the missing pool", err, out, errOut)
	}

	for i, p := range nss {
		if out, errOut, err := cnitool("del", "serval", p); err != nil {
			t.Errorf("cnitool del serval %s: %v\n%s%s", p, err, out, errOut)
		}
		// DEL twice is fine.
		if out, errOut, err := cnitool("del", "serval", p); err != nil {
			t.Errorf("second cnitool del serval %s: %v\n%s%s", p, err, out, errOut)
		}
		if out, _ := servalctlOut(t, "ipam", "show", "--ip", addrs[i].String()); !strings.Contains(out, "is not assigned") {
			t.Errorf("after del, servalctl ipam show --ip %s:\n%s", addrs[i], out)
		}
	}
	if got := poolInUse(t, poolV4); got != before {
		t.Errorf("after del: %d in use in %s, want %d", got, poolV4, before)
	}
}

// servalctlOut runs servalctl (its code, in this process) against the
// test's etcd.
func servalctlOut(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), append(args, "--etcd-endpoints", etcdURL),
		cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return out.String() + errOut.String(), code
}

// poolInUse reads a pool's "IPS IN USE" from servalctl ipam show.
func poolInUse(t *testing.T, cidr string) int {
	t.Helper()
	out, code := servalctlOut(t, "ipam", "show")
	m := regexp.MustCompile(`(?m)^IP Pool\s+` + regexp.QuoteMeta(cidr) + `\s+\d+\s+(\d+) \(`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("servalctl ipam show (exit %d) has no line for %s:\n%s", code, cidr, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
