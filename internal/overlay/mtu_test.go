package overlay

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
)

type fakeLinks map[string]struct {
	mtu   int
	addrs []string
}

func (f fakeLinks) LinkList() ([]netlink.Link, error) {
	var out []netlink.Link
	for name, l := range f {
		out = append(out, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: l.mtu}})
	}
	return out, nil
}

func (f fakeLinks) AddrList(l netlink.Link, _ int) ([]netlink.Addr, error) {
	var out []netlink.Addr
	for _, a := range f[l.Attrs().Name].addrs {
		out = append(out, netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(a), Mask: net.CIDRMask(24, 32)}})
	}
	return out, nil
}

func TestUplinkMTU(t *testing.T) {
	links := fakeLinks{
		"lo":            {65536, []string{"127.0.0.1"}},
		"eth0":          {9000, []string{"10.0.1.11"}},
		"eth1":          {1500, []string{"10.9.0.1"}},
		DeviceV4:        {8950, []string{"192.168.0.1"}},
		"calia1b2c3d4e": {1500, []string{"169.254.1.1"}},
	}
	for _, tc := range []struct {
		name string
		host []netip.Addr
		want int
	}{
		{"the interface of the host's address", []netip.Addr{netip.MustParseAddr("10.0.1.11")}, 9000},
		{"else the smallest with an address", nil, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UplinkMTU(links, tc.host, "cali")
			if err != nil || got != tc.want {
				t.Fatalf("UplinkMTU = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestMTUFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "mtu")
	for _, m := range []int{1450, 1450, 8950} {
		if err := WriteMTUFile(path, m); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadMTUFile(path); err != nil || got != m {
			t.Fatalf("ReadMTUFile = %d, %v; want %d", got, err, m)
		}
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMTUFile(path); err == nil {
		t.Fatal("ReadMTUFile accepted garbage")
	}
	d := Desired{MTU4: 1450, MTU6: 1430}
	if got := d.WorkloadMTU(1500); got != 1430 {
		t.Fatalf("WorkloadMTU = %d, want the smallest device MTU 1430", got)
	}
	if got := (Desired{}).WorkloadMTU(9000); got != 9000 {
		t.Fatalf("WorkloadMTU with no overlay = %d, want the uplink's 9000", got)
	}
}
