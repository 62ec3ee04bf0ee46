package dataplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/hoststate"
)

// TestActionsGolden: the Log action with and without a rate limit, and
// the deny action Reject (not in preDNAT or doNotTrack chains, nor for
// anti-spoofing).
func TestActionsGolden(t *testing.T) {
	cases := []struct {
		name string
		cfg  hoststate.Config
	}{
		{"log_rate_limit", hoststate.Config{LogPrefix: "svl", LogRate: hoststate.RateLimit{Rate: 5, Unit: "second", Burst: 10}}},
		{"deny_reject", hoststate.Config{DenyAction: "Reject"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDP(t)
			d.OnConfigUpdate(c.cfg)
			d.OnPolicyUpdate(inPolicy("default", "p1",
				hoststate.Rule{Action: hoststate.Log, ID: "r0"}, hoststate.Rule{Action: hoststate.Deny, Protocol: u8(udp), ID: "r1"}))
			d.OnPolicyUpdate(hoststate.Policy{ID: pid("default", "raw"), Untracked: true,
				InboundRules: []hoststate.Rule{{Action: hoststate.Deny, Protocol: u8(udp), ID: "r0"}}})
			d.OnWorkloadEndpointUpdate(wep("ns/w1", "cali1", pfx("10.65.0.1/32"),
				[]hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "p1"))}))
			d.OnHostEndpointUpdate(hoststate.HostEndpoint{ID: "eth0", InterfaceName: "eth0",
				UntrackedTiers: []hoststate.TierPolicies{tierIn("default", hoststate.Deny, pid("default", "raw"))}})
			d.OnInSync()
			d.apply(t)
			golden(t, c.name, trimDump(d.nft.Dump()))
		})
	}
}

// TestDenyRejectPackets: with the deny action Reject, a denied connection
// is refused at once (an ICMP error comes back) instead of timing out.
func TestDenyRejectPackets(t *testing.T) {
	tp := newTopo(t)
	d := tp.d
	d.OnPolicyUpdate(inPolicy("t1", "deny", hoststate.Rule{Action: hoststate.Deny, ID: "r"}))
	for _, c := range []struct {
		action  string
		refused bool
	}{{"Reject", true}, {"Drop", false}} {
		d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, DenyAction: c.action})
		tp.w2Policy(t, []hoststate.TierPolicies{tierIn("t1", hoststate.Deny, pid("t1", "deny"))})
		err := dial(tp.w1, "", "10.65.0.2:80")
		if err == nil {
			t.Fatalf("deny action %s: connection went through", c.action)
		}
		if got := errors.Is(err, syscall.ECONNREFUSED); got != c.refused {
			t.Errorf("deny action %s: refused=%v (%v), want refused=%v", c.action, got, err, c.refused)
		}
	}
}

// TestLogRateLimitPackets counts the kernel log lines a Log rule writes
// for a burst of new connections: without a limit one per packet, with
// logActionRateLimit at most burst + rate × elapsed time.
func TestLogRateLimitPackets(t *testing.T) {
	tp := newTopo(t)
	d := tp.d
	// Logging from a network namespace other than the first is off unless
	// this is set (it is global); put it back afterwards.
	const allNetns = "/proc/sys/net/netfilter/nf_log_all_netns"
	old, err := os.ReadFile(allNetns)
	if err != nil {
		t.Fatalf("reading %s (is nf_log loaded?): %v", allNetns, err)
	}
	if err := os.WriteFile(allNetns, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(allNetns, old, 0o644) })
	// A raw descriptor: os.File would park a read on EAGAIN in the
	// poller instead of returning at the end of the log.
	kmsg, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening /dev/kmsg: %v", err)
	}
	defer syscall.Close(kmsg)

	d.OnPolicyUpdate(inPolicy("t1", "log", hoststate.Rule{Action: hoststate.Log, ID: "r0"}, hoststate.Rule{Action: hoststate.Allow, ID: "r1"}))
	tiers := []hoststate.TierPolicies{tierIn("t1", hoststate.Deny, pid("t1", "log"))}
	const conns = 40
	for _, c := range []struct {
		name string
		rate hoststate.RateLimit
	}{
		{"no limit", hoststate.RateLimit{}},
		{"2/second burst 3", hoststate.RateLimit{Rate: 2, Unit: "second", Burst: 3}},
	} {
		prefix := fmt.Sprintf("svt%d-%d ", os.Getpid()%10000, c.rate.Burst)
		d.OnConfigUpdate(hoststate.Config{InterfacePrefixes: []string{"cali"}, LogPrefix: prefix, LogRate: c.rate})
		tp.w2Policy(t, tiers)
		if _, err := syscall.Seek(kmsg, 0, io.SeekEnd); err != nil {
			t.Fatalf("seeking /dev/kmsg: %v", err)
		}
		start := time.Now()
		for i := 0; i < conns; i++ {
			if err := dial(tp.w1, "", "10.65.0.2:80"); err != nil {
				t.Fatalf("%s: connection %d: %v", c.name, i, err)
			}
		}
		elapsed := time.Since(start)
		time.Sleep(200 * time.Millisecond) // let printk catch up
		n := countKmsg(t, kmsg, prefix)
		if c.rate.Rate == 0 {
			// One SYN per connection (the rest is established).
			if n != conns {
				t.Errorf("%s: %d log lines for %d connections, want %d", c.name, n, conns, conns)
			}
			continue
		}
		max := int(c.rate.Burst) + int(float64(c.rate.Rate)*elapsed.Seconds()) + 1
		t.Logf("%s: %d log lines for %d connections in %v (at most %d allowed)", c.name, n, conns, elapsed, max)
		if n == 0 || n > max {
			t.Errorf("%s: %d log lines, want 1..%d", c.name, n, max)
		}
	}
}

// countKmsg reads what /dev/kmsg has past the current position and counts
// the records of TCP packets to port 80 that carry prefix.
func countKmsg(t *testing.T, fd int, prefix string) int {
	t.Helper()
	n := 0
	buf := make([]byte, 8192)
	for {
		// Each read returns one record; EAGAIN at the end.
		m, err := syscall.Read(fd, buf)
		if m == 0 && err == nil {
			return n
		}
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				return n
			}
			if errors.Is(err, syscall.EPIPE) {
				continue // records were overwritten; go on
			}
			t.Fatalf("reading /dev/kmsg: %v", err)
		}
		// Only the test's connections: the host's own IPv6 neighbour
		// discovery towards the workload crosses the rule too.
		if rec := string(buf[:m]); strings.Contains(rec, prefix) && strings.Contains(rec, "PROTO=TCP") && strings.Contains(rec, "DPT=80 ") {
			n++
		}
	}
}
