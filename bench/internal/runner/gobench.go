package runner

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
)

// BenchResults maps a benchmark name (without the -GOMAXPROCS suffix) to
// its metrics, each with one value per run (-count).
type BenchResults map[string]map[string][]float64

var procSuffix = regexp.MustCompile(`-\d+$`)

// ParseGoBench reads `go test -bench` output. Lines that are not benchmark
// results are ignored.
func ParseGoBench(out string) BenchResults {
	res := BenchResults{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // "BenchmarkX ... --- FAIL" and the like
		}
		name := procSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			if res[name] == nil {
				res[name] = map[string][]float64{}
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	return res
}
