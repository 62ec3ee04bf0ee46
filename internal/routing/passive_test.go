package routing

import (
	"net/netip"
	"testing"
)

// Between two Serval nodes exactly one end connects (the lower address),
// so that after a lost session the two never keep missing each other;
// external routers are always connected to.
func TestToAPIPeerPassive(t *testing.T) {
	d := Desired{NodeIPv4: netip.MustParseAddr("10.0.0.5"), NodeIPv6: netip.MustParseAddr("fd00::5")}
	tests := []struct {
		name     string
		peer     Peer
		wantPass bool
	}{
		{"node with a higher address: we connect", Peer{Address: netip.MustParseAddr("10.0.0.10"), PeerNode: "b"}, false},
		{"node with a lower address: it connects", Peer{Address: netip.MustParseAddr("10.0.0.4"), PeerNode: "a"}, true},
		{"numeric, not lexical, order", Peer{Address: netip.MustParseAddr("10.0.0.40"), PeerNode: "c"}, false},
		{"IPv6 node compares our IPv6 address", Peer{Address: netip.MustParseAddr("fd00::1"), PeerNode: "a"}, true},
		{"node addresses decide, whatever the source address", Peer{Address: netip.MustParseAddr("10.0.0.4"), PeerNode: "a", LocalAddress: netip.MustParseAddr("10.0.0.3")}, true},
		{"external router with a lower address: we still connect", Peer{Address: netip.MustParseAddr("10.0.0.1")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap := toAPIPeer(tt.peer, d, 0)
			if got := ap.Transport.PassiveMode; got != tt.wantPass {
				t.Errorf("passive = %v, want %v", got, tt.wantPass)
			}
		})
	}
}
