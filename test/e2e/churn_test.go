package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

const churnTopo = `
hosts:
  - {name: host1, address: 172.17.9.101/24}
  - {name: host2, address: 172.17.9.102/24}
workloads:
  - {name: P1, host: host1, labels: {role: prober}}
  - {name: P2, host: host2, labels: {role: prober}}
manifests: [testdata/churn-policy.yaml]
`

// TestWorkloadChurn adds and deletes workloads on two hosts while a probe
// between two other workloads runs without pause. The probe must never
// fail; every new workload must be reachable from the other host unless it
// is labelled isolated (testdata/churn-policy.yaml denies its ingress), in
// which case it must still reach out; and no address may be handed out
// while a live workload holds it, nor before IPAM has released it.
func TestWorkloadChurn(t *testing.T) {
	needRoot(t)
	needAgent(t)
	name := labName(t, "churn")
	l, _ := upLab(t, name, churnTopo)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	stopProbe := continuousProbe(t, l, "P1", "P2")

	const rounds = 3
	other := map[string]string{"host1": "P2", "host2": "P1"}
	live := map[netip.Addr]string{} // address -> workload holding it
	for _, w := range []string{"P1", "P2"} {
		live[workloadIP(t, l, w)] = w
	}
	released := map[netip.Addr]bool{} // addresses IPAM has given back
	reused := 0
	var previous []string
	var reuse netip.Addr // a released address the next host1-open asks for
	for round := 1; round <= rounds; round++ {
		// Delete the previous round's workloads first: their addresses
		// must go back to IPAM, and only then may they come out again.
		for _, w := range previous {
			ip := workloadIP(t, l, w)
			if got := ipamShow(t, l, ip); !strings.Contains(got, "is in use") {
				t.Errorf("before deleting %s: ipam show --ip %s:\n%s", w, ip, got)
			}
			released[ip] = false
			if err := l.DeleteWorkload(ctx, w); err != nil {
				t.Fatalf("round %d: deleting %s: %v", round, w, err)
			}
			delete(live, ip)
			if got := ipamShow(t, l, ip); !strings.Contains(got, "is not assigned") {
				t.Errorf("after deleting %s, ipam show --ip %s:\n%s", w, ip, got)
			} else {
				released[ip] = true
			}
			if strings.HasSuffix(w, "-host1-open") {
				reuse = ip
			}
		}
		// An address a live workload holds is refused, even when asked
		// for by name; P1 holds its own and the probe keeps using it.
		thief := lab.Workload{Name: fmt.Sprintf("c%d-thief", round), Host: "host1", Address: workloadIP(t, l, "P1").String()}
		if err := l.AddWorkload(ctx, thief); err == nil {
			t.Errorf("round %d: %s was given %s, which P1 holds", round, thief.Name, thief.Address)
			live[workloadIP(t, l, thief.Name)] = thief.Name
		} else if round == 1 {
			t.Logf("asking for P1's address is refused: %v", err)
		}

		var added []string
		for _, host := range []string{"host1", "host2"} {
			for _, isolated := range []bool{true, false} {
				w := lab.Workload{Name: fmt.Sprintf("c%d-%s-open", round, host), Host: host, Labels: map[string]string{"churn": "yes"}}
				if isolated {
					w.Name = fmt.Sprintf("c%d-%s-iso", round, host)
					w.Labels["isolated"] = "yes"
				} else if host == "host1" && reuse.IsValid() {
					// A released address can be had again.
					w.Address = reuse.String()
				}
				if err := l.AddWorkload(ctx, w); err != nil {
					t.Fatalf("round %d: adding %s: %v", round, w.Name, err)
				}
				ip := workloadIP(t, l, w.Name)
				if holder, ok := live[ip]; ok {
					t.Errorf("round %d: %s got %s, which %s still holds", round, w.Name, ip, holder)
				}
				if _, seen := released[ip]; seen {
					if !released[ip] {
						t.Errorf("round %d: %s got %s before IPAM released it", round, w.Name, ip)
					}
					reused++
				}
				live[ip] = w.Name
				added = append(added, w.Name)
			}
			// The isolated workload was written first: once its open
			// sibling answers, the agent has seen it too, so its denial
			// below is policy, not an endpoint still being set up.
			openW, isoW, from := fmt.Sprintf("c%d-%s-open", round, host), fmt.Sprintf("c%d-%s-iso", round, host), other[host]
			tcp := lab.ProbeSpec{Proto: "tcp", Port: 8080, Timeout: time.Second}
			eventuallyProbe(t, l, from, openW, tcp, true, 20*time.Second)
			eventuallyProbe(t, l, isoW, from, tcp, true, 20*time.Second)
			for i := 0; i < 2; i++ {
				if ok, err := l.Probe(ctx, from, isoW, tcp); err != nil || ok {
					t.Errorf("round %d: %s -> isolated %s: allowed=%v err=%v, want denied", round, from, isoW, ok, err)
				}
			}
		}
		previous = added
	}
	ok, failed := stopProbe()
	t.Logf("continuous probe: %d answered, %d failed; %d released addresses were handed out again", ok, len(failed), reused)
	if len(failed) > 0 {
		t.Errorf("the continuous probe P1 <-> P2 failed %d times during churn:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	if reused != rounds-1 {
		t.Errorf("%d released addresses were asked for and given again, want %d", reused, rounds-1)
	}
	if ok < 20 {
		t.Errorf("the continuous probe made only %d successful probes: too few to show anything", ok)
	}
}

// continuousProbe probes a -> b and b -> a over tcp, back to back, until
// the returned function is called; that returns how many answered and a
// line for every one that did not. It uses listeners and namespaces fixed
// at the start, so it never reads the lab's state while the test changes
// it.
func continuousProbe(t *testing.T, l *lab.Lab, a, b string) func() (int, []string) {
	t.Helper()
	spec := lab.ProbeSpec{Proto: "tcp", Port: 9090, Timeout: time.Second}
	type end struct {
		ep lab.Endpoint
		ln *lab.Listener
	}
	var ends [2]end
	for i, name := range []string{a, b} {
		ep, err := l.Resolve(name)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := lab.Listen(ep.Netns, spec)
		if err != nil || ln == nil {
			t.Fatalf("listener in %s: %v", name, err)
		}
		ends[i] = end{ep, ln}
	}
	// The lab is converged when up returns: the first probe must pass.
	for _, p := range [][2]end{{ends[0], ends[1]}, {ends[1], ends[0]}} {
		if ok, err := lab.Send(context.Background(), p[0].ep.Netns, p[1].ep.IP, spec, p[1].ln); !ok || err != nil {
			t.Fatalf("%s -> %s before any change: allowed=%v err=%v", p[0].ep.Name, p[1].ep.Name, ok, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var okCount int
	var failed []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		for i := 0; ctx.Err() == nil; i++ {
			from, to := ends[i%2], ends[1-i%2]
			ok, err := lab.Send(ctx, from.ep.Netns, to.ep.IP, spec, to.ln)
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			if ok {
				okCount++
			} else {
				failed = append(failed, fmt.Sprintf("%s -> %s at +%s: err=%v", from.ep.Name, to.ep.Name, time.Since(start).Round(time.Millisecond), err))
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	stopped := false
	stop := func() (int, []string) {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
			ends[0].ln.Close()
			ends[1].ln.Close()
		}
		mu.Lock()
		defer mu.Unlock()
		return okCount, failed
	}
	t.Cleanup(func() { stop() })
	return stop
}

// eventuallyProbe probes from -> to until the verdict is want or timeout
// passes, and fails the test then. New endpoints take a moment to reach
// the agents.
func eventuallyProbe(t *testing.T, l *lab.Lab, from, to string, spec lab.ProbeSpec, want bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := l.Probe(context.Background(), from, to, spec)
		if err != nil {
			t.Fatalf("probe %s -> %s: %v", from, to, err)
		}
		if ok == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s -> %s %s: still allowed=%v after %s, want allowed=%v", from, to, spec.Proto, ok, timeout, want)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// workloadIP is the address CNI gave workload w.
func workloadIP(t *testing.T, l *lab.Lab, w string) netip.Addr {
	t.Helper()
	ws := l.State.Workloads[w]
	if ws == nil {
		t.Fatalf("workload %s has no state", w)
	}
	ip, err := netip.ParseAddr(ws.IP)
	if err != nil {
		t.Fatalf("workload %s: address %q: %v", w, ws.IP, err)
	}
	return ip
}

// ipamShow is `servalctl ipam show --ip ip` against the lab's datastore.
func ipamShow(t *testing.T, l *lab.Lab, ip netip.Addr) string {
	t.Helper()
	out, err := l.Servalctl(context.Background(), nil, "ipam", "show", "--ip", ip.String())
	if err != nil {
		t.Fatalf("ipam show --ip %s: %v\n%s", ip, err, out)
	}
	return string(out)
}

// manifest is the absolute path of a file in testdata.
func manifest(name string) string { return filepath.Join(repo, "test", "e2e", "testdata", name) }
