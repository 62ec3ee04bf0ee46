package addrdetect

import (
	"errors"
	"net/netip"
	"testing"
)

type fakeHost struct {
	ifaces []Interface
	src    map[netip.Addr]netip.Addr
}

func (f fakeHost) Interfaces() ([]Interface, error) { return f.ifaces, nil }
func (f fakeHost) SourceFor(dst netip.Addr) (netip.Addr, error) {
	if s, ok := f.src[dst]; ok {
		return s, nil
	}
	return netip.Addr{}, errors.New("no route")
}

var host = fakeHost{
	ifaces: []Interface{
		{Name: "lo", Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}},
		{Name: "docker0", Addrs: []netip.Prefix{netip.MustParsePrefix("172.18.0.1/16")}},
		{Name: "cali0123456789a", Addrs: []netip.Prefix{netip.MustParsePrefix("169.254.1.1/32")}},
		{Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00::5/64")}},
		{Name: "eth1", Addrs: []netip.Prefix{netip.MustParsePrefix("172.17.8.101/24"), netip.MustParsePrefix("fd00:8::101/64")}},
	},
	src: map[netip.Addr]netip.Addr{
		netip.MustParseAddr("172.17.8.1"): netip.MustParseAddr("172.17.8.101"),
		netip.MustParseAddr("8.8.8.8"):    netip.MustParseAddr("10.0.0.5"),
		netip.MustParseAddr("10.9.9.9"):   netip.MustParseAddr("10.9.9.1"),
	},
}

func TestDetect(t *testing.T) {
	cases := []struct {
		method string
		fam    Family
		want   string // "" means ErrNotFound
	}{
		{"", IPv4, "10.0.0.5/24"},
		{"first-found", IPv4, "10.0.0.5/24"},
		{"first-found", IPv6, "fd00::5/64"},
		{"interface=eth1", IPv4, "172.17.8.101/24"},
		{"interface=eth1", IPv6, "fd00:8::101/64"},
		{"interface=eth.*", IPv4, "10.0.0.5/24"},
		{"interface=ens.*,eth1", IPv4, "172.17.8.101/24"},
		{"interface=docker0", IPv4, "172.18.0.1/16"}, // asked for by name: allowed
		{"interface=wlan0", IPv4, ""},
		{"skip-interface=eth0", IPv4, "172.17.8.101/24"},
		{"skip-interface=eth.*", IPv4, ""},
		{"can-reach=172.17.8.1", IPv4, "172.17.8.101/24"},
		{"can-reach=8.8.8.8", IPv4, "10.0.0.5/24"},
		{"can-reach=10.9.9.9", IPv4, "10.9.9.1/32"}, // source not on a listed interface
		{"cidr=172.17.8.0/24", IPv4, "172.17.8.101/24"},
		{"cidr=192.168.0.0/16,172.16.0.0/12", IPv4, "172.17.8.101/24"},
		{"cidr=fd00:8::/64", IPv6, "fd00:8::101/64"},
		{"cidr=192.168.0.0/16", IPv4, ""},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			m, err := ParseMethod(c.method)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Detect(host, m, c.fam)
			if c.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("want ErrNotFound, got %v, %v", got, err)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("got %v, %v; want %s", got, err, c.want)
			}
		})
	}
}

func TestParseMethodErrors(t *testing.T) {
	for _, s := range []string{"interface=", "interface=eth(", "can-reach=host.example", "cidr=10.0.0.0/33", "cidr=", "magic"} {
		if _, err := ParseMethod(s); err == nil {
			t.Errorf("ParseMethod(%q) accepted", s)
		}
	}
	m, _ := ParseMethod("can-reach=fd00::1")
	if _, err := Detect(host, m, IPv4); err == nil {
		t.Error("can-reach with an IPv6 destination for IPv4 accepted")
	}
}
