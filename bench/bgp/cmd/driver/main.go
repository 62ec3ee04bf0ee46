// Command driver is bench/bgp's benchmark driver (servalbench --part bgp
// runs it as `go run ./bench/bgp/cmd/driver` from the repository root; it
// needs root). It prints one JSON record per figure on standard output
// ({"name","value","unit","samples","stat",...}) and progress on standard
// error. Two measurements:
//
//   - reach: in a serval-lab of -hosts hosts (full mesh, real serval-node),
//     a new workload on host h01, in a block of its own, is probed from a
//     workload on h02 until it answers; p50/p99 over -samples workloads
//     of the time from the start of its CNI ADD.
//   - scale: -scale hosts as GoBGP speakers without a dataplane
//     (internal/routing Speakers, Netlink nil) on 127.1.x.y of a network
//     namespace of our own, behind -rrs route reflectors (Calico's setup:
//     mesh off, one BGPPeer with a peerSelector), cold-started at once:
//     time until every speaker has every block, and RSS growth per host
//     and per reflector (reflectors and hosts run in separate processes);
//     then the same for a full mesh of each -mesh size.
//
// Usage: go run ./bench/bgp/cmd/driver [-part reach|scale|all] [-hosts 20]
// [-samples 20] [-scale 200] [-rrs 2] [-mesh 50,100]
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

type record struct {
	Name    string    `json:"name"`
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples,omitempty"`
	Stat    string    `json:"stat,omitempty"`
	RatioTo string    `json:"ratio_to,omitempty"`
	Ratio   float64   `json:"ratio,omitempty"`
}

func emit(r record) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		fs := flag.NewFlagSet("child", flag.ExitOnError)
		n := fs.Int("n", 0, "hosts")
		rrs := fs.Int("rrs", 0, "reflectors")
		first := fs.Int("first", 0, "first host of this process")
		last := fs.Int("last", 0, "one past the last host of this process")
		timeout := fs.Duration("timeout", 5*time.Minute, "give up when not converged by then")
		_ = fs.Parse(os.Args[2:])
		if err := runChild(*n, *rrs, *first, *last, *timeout); err != nil {
			fmt.Fprintln(os.Stderr, "bgp bench child:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run())
}

func run() int {
	part := flag.String("part", "all", "reach, scale or all")
	hosts := flag.Int("hosts", 20, "hosts of the reach lab")
	samples := flag.Int("samples", 20, "new workloads timed in the reach lab")
	scale := flag.Int("scale", 200, "hosts behind the reflectors")
	rrs := flag.Int("rrs", 2, "route reflectors")
	meshList := flag.String("mesh", "50,100", "full-mesh sizes to compare with")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bgp bench: needs root (network namespaces, port 179)")
		return 2
	}
	repo, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	failed := false

	if *part == "reach" || *part == "all" {
		bin, err := buildBinaries(repo)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bgp bench:", err)
			return 1
		}
		defer os.RemoveAll(bin)
		res, err := runReach(bin, *hosts, *samples, logger)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bgp bench: reach:", err)
			failed = true
		} else {
			stat := fmt.Sprintf("of %d, %d hosts", len(res.Samples), res.Hosts)
			emit(record{Name: "bgp.new_workload_reachable_p50", Value: percentile(res.Samples, 50), Unit: "ms", Samples: res.Samples, Stat: "p50 " + stat})
			emit(record{Name: "bgp.new_workload_reachable_p99", Value: percentile(res.Samples, 99), Unit: "ms", Stat: "p99 " + stat})
			emit(record{Name: "bgp.new_workload_cni_add_p50", Value: percentile(res.AddMS, 50), Unit: "ms", Samples: res.AddMS, Stat: "p50 " + stat})
		}
	}

	if *part == "scale" || *part == "all" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		netns := "benchbgp" + hex.EncodeToString(b)
		if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bgp bench: ip netns add %s: %v: %s\n", netns, err, out)
			return 1
		}
		defer func() { _ = exec.Command("ip", "netns", "del", netns).Run() }()
		if out, err := exec.Command("ip", "-n", netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bgp bench: lo up: %v: %s\n", err, out)
			return 1
		}
		rr, err := runScale(self, netns, *scale, *rrs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bgp bench: reflectors:", err)
			failed = true
		} else {
			fmt.Fprintf(os.Stderr, "bgp bench: %d hosts, %d reflectors: converged in %.0f ms; %.0f KiB/host, %.0f KiB/reflector (RSS)\n", rr.N, rr.RRs, rr.ConvergedMS, rr.PerHostKB, rr.PerRRKB)
			tag := fmt.Sprintf("hosts=%d,rrs=%d", rr.N, rr.RRs)
			emit(record{Name: "bgp.rr.cold_start_converged." + tag, Value: rr.ConvergedMS, Unit: "ms", Stat: "one cold start"})
			emit(record{Name: "bgp.rr.rss_per_host." + tag, Value: rr.PerHostKB, Unit: "KiB"})
			emit(record{Name: "bgp.rr.rss_per_reflector." + tag, Value: rr.PerRRKB, Unit: "KiB"})
			emit(record{Name: "bgp.rr.heap_per_host." + tag, Value: rr.HostHeapKB, Unit: "KiB"})
			emit(record{Name: "bgp.rr.heap_per_reflector." + tag, Value: rr.RRHeapKB, Unit: "KiB"})
		}
		for _, s := range strings.Split(*meshList, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 2 {
				continue
			}
			for _, pair := range []struct {
				rrs int
				key string
			}{{*rrs, "rr"}, {0, "mesh"}} {
				if pair.rrs > 0 && n == *scale {
					continue // measured above
				}
				m, err := runScale(self, netns, n, pair.rrs)
				if err != nil {
					fmt.Fprintf(os.Stderr, "bgp bench: %s of %d: %v\n", pair.key, n, err)
					failed = true
					continue
				}
				fmt.Fprintf(os.Stderr, "bgp bench: %s of %d: converged in %.0f ms; %.0f KiB/host, %.0f KiB/reflector (RSS)\n", pair.key, n, m.ConvergedMS, m.PerHostKB, m.PerRRKB)
				tag := fmt.Sprintf("hosts=%d", n)
				if pair.rrs > 0 {
					tag += fmt.Sprintf(",rrs=%d", pair.rrs)
				}
				emit(record{Name: "bgp." + pair.key + ".cold_start_converged." + tag, Value: m.ConvergedMS, Unit: "ms", Stat: "one cold start"})
				emit(record{Name: "bgp." + pair.key + ".rss_per_host." + tag, Value: m.PerHostKB, Unit: "KiB"})
				if pair.rrs > 0 {
					emit(record{Name: "bgp." + pair.key + ".rss_per_reflector." + tag, Value: m.PerRRKB, Unit: "KiB"})
				}
			}
		}
	}
	if failed {
		return 1
	}
	return 0
}
