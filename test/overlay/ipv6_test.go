package overlay

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
	"github.com/servalnet/serval/internal/overlay"
)

// TestVXLANIPv6: dual-stack hosts on two IPv6 subnets behind the static
// router; IPv6 workloads reach each other through vxlan-v6.serval, with
// an MTU 70 below the fabric's, and CrossSubnet keeps h1 -> h2 native.
func TestVXLANIPv6(t *testing.T) {
	topo := fmt.Sprintf(`
mtu: 1500
router: {kind: static, address: 172.31.1.1/24, subnets: [172.31.2.1/24], address6: "fd31:1::1/64", subnets6: ["fd31:2::1/64"]}
hosts:
  - {name: h1, address: 172.31.1.11/24, address6: "fd31:1::11/64"}
  - {name: h2, address: 172.31.1.12/24, address6: "fd31:1::12/64"}
  - {name: h3, address: 172.31.2.13/24, address6: "fd31:2::13/64"}
workloads:
  - {name: w1, host: h1}
  - {name: w2, host: h2}
  - {name: w3, host: h3}
manifests:
  - %s
  - %s
`, filepath.Join(repo, "test", "overlay", "testdata", "vxlan-always.yaml"), filepath.Join(repo, "test", "overlay", "testdata", "vxlan6.yaml"))
	l := upLab(t, "v", topo)
	w6 := map[string]string{}
	for _, w := range []string{"w1", "w2", "w3"} {
		out := mustSh(t, l.Netns(w), "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		f := strings.Fields(out)
		if len(f) < 4 || !strings.HasPrefix(f[3], "fd00:244:") {
			t.Fatalf("%s has no IPv6 address from the overlay pool:\n%s", w, out)
		}
		w6[w] = strings.Split(f[3], "/")[0]
	}
	ping6 := func(from, to string, size int) error {
		args := []string{"ping", "-6", "-c", "1", "-W", "2", to}
		if size > 0 {
			args = append(args, "-M", "do", "-s", strconv.Itoa(size))
		}
		out, err := sh(t, l.Netns(from), args...)
		if err != nil {
			return fmt.Errorf("%s -> %s: %v\n%s", from, to, err, out)
		}
		return nil
	}
	eventually(t, 30*time.Second, "IPv6 workloads reach each other over VXLAN", func() error {
		for _, p := range pairs {
			if err := ping6(p[0], w6[p[1]], 0); err != nil {
				return err
			}
		}
		return nil
	})
	before := counter(t, l, "h1", overlay.DeviceV6, "tx_packets")
	if err := ping6("w1", w6["w3"], 0); err != nil {
		t.Fatal(err)
	}
	if after := counter(t, l, "h1", overlay.DeviceV6, "tx_packets"); after <= before {
		t.Errorf("w1 -> w3 over IPv6 did not use %s (tx %d -> %d)", overlay.DeviceV6, before, after)
	}
	// The workload gets the smaller of the two tunnels' MTUs: 1500-70.
	if out := mustSh(t, l.Netns("w1"), "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, fmt.Sprintf(" mtu %d ", 1500-overlay.OverheadV6)) {
		t.Errorf("w1's eth0: want mtu %d:\n%s", 1500-overlay.OverheadV6, out)
	}
	// The largest IPv6 DF ping: MTU less 40 (IPv6) and 8 (ICMPv6).
	if err := ping6("w1", w6["w3"], 1500-overlay.OverheadV6-48); err != nil {
		t.Errorf("largest IPv6 ping: %v", err)
	}
	bulkTCP6(t, l, "w1", "w3", w6["w3"])

	// CrossSubnet on the IPv6 pool: h1 -> h2 native, h1 -> h3 tunnelled.
	setPool6(t, l, "CrossSubnet")
	eventually(t, 30*time.Second, "h1 routes h2's IPv6 block natively", func() error {
		r := mustSh(t, l.Netns("h1"), "ip", "-6", "route", "show", "proto", strconv.Itoa(overlay.RouteProtocol))
		if !strings.Contains(r, "via fd31:1::12 dev eth0") || !strings.Contains(r, "dev "+overlay.DeviceV6) {
			return fmt.Errorf("routes:\n%s", r)
		}
		return nil
	})
	before = counter(t, l, "h1", overlay.DeviceV6, "tx_packets")
	for range 3 {
		if err := ping6("w1", w6["w2"], 0); err != nil {
			t.Fatal(err)
		}
	}
	if after := counter(t, l, "h1", overlay.DeviceV6, "tx_packets"); after != before {
		t.Errorf("CrossSubnet: w1 -> w2 over IPv6 was encapsulated (tx %d -> %d)", before, after)
	}
	if err := ping6("w1", w6["w3"], 0); err != nil {
		t.Fatal(err)
	}
}

func setPool6(t *testing.T, l *lab.Lab, mode string) {
	t.Helper()
	pool := "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: overlay6\nspec:\n  cidr: fd00:244::/48\n  blockSize: 122\n  vxlanMode: " + mode + "\n"
	if out, err := l.Servalctl(t.Context(), []byte(pool), "apply", "-f", "-"); err != nil {
		t.Fatalf("servalctl apply: %v\n%s", err, out)
	}
}
