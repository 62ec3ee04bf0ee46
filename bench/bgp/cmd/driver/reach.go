package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/servalnet/serval/internal/lab"
)

// reachResult: how long a new workload on host A takes to be reachable
// from a workload on host B, in a lab of hosts hosts in the full mesh.
type reachResult struct {
	Hosts   int
	Samples []float64 // ms from the start of CNI ADD to the first answer
	AddMS   []float64 // ms the CNI ADD itself took
}

// runReach brings a lab up, then samples times: each new workload on h01
// gets a static address in a block of its own, so every sample needs a
// BGP advertisement (a new block) before B's host has a route to it.
func runReach(binDir string, hosts, samples int, logger *slog.Logger) (reachResult, error) {
	res := reachResult{Hosts: hosts}
	name := fmt.Sprintf("bgpbench%d", os.Getpid()%100000)
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nhosts:\n", name)
	for i := 1; i <= hosts; i++ {
		fmt.Fprintf(&b, "  - {name: h%02d, address: 172.30.%d.%d/16}\n", i, 5+i/250, i%250+1)
	}
	b.WriteString("workloads:\n  - {name: probe, host: h02}\n")
	dir, err := os.MkdirTemp("", "serval-bgp-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	open := filepath.Join(dir, "open.yaml")
	if err := os.WriteFile(open, []byte(openYAML), 0o644); err != nil {
		return res, err
	}
	fmt.Fprintf(&b, "manifests: [%s]\n", open)
	t, err := lab.ParseTopology(name+".yaml", []byte(b.String()))
	if err != nil {
		return res, err
	}
	opts := lab.Options{BinDir: binDir, Logger: logger}
	defer func() { _ = lab.Down(context.Background(), name, lab.Options{Logger: logger}) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, t, opts)
	if err != nil {
		return res, fmt.Errorf("lab up: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bgp bench: %d-host lab up in %s\n", hosts, time.Since(start).Round(time.Millisecond))
	for i := 0; i < samples; i++ {
		w := lab.Workload{Name: fmt.Sprintf("new%02d", i), Host: "h01", Namespace: "default",
			Address: netip.AddrFrom4([4]byte{192, 168, byte(100 + i), 10}).String()}
		t0 := time.Now()
		if err := l.AddWorkload(ctx, w); err != nil {
			return res, fmt.Errorf("adding %s: %w", w.Name, err)
		}
		added := time.Since(t0)
		ip := netip.MustParseAddr(w.Address)
		for {
			ok, err := lab.Send(ctx, l.Netns("probe"), ip, lab.ProbeSpec{Proto: "icmp", Timeout: 50 * time.Millisecond}, nil)
			if err != nil {
				return res, fmt.Errorf("probing %s: %w", w.Name, err)
			}
			if ok {
				break
			}
			if time.Since(t0) > 30*time.Second {
				return res, fmt.Errorf("%s (%s) not reachable from probe after 30s", w.Name, ip)
			}
		}
		res.Samples = append(res.Samples, ms(time.Since(t0)))
		res.AddMS = append(res.AddMS, ms(added))
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile of sorted-copied xs (nearest rank).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k := int(p/100*float64(len(s))+0.999999) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(s) {
		k = len(s) - 1
	}
	return s[k]
}

// buildBinaries builds what a lab runs into a temporary directory.
func buildBinaries(repo string) (string, error) {
	dir, err := os.MkdirTemp("", "serval-bgp-bench-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-node")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building: %w\n%s", err, out)
	}
	return dir, nil
}

const openYAML = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-all
spec:
  selector: all()
  ingress:
    - action: Allow
  egress:
    - action: Allow
`
