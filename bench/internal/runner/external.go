package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/servalnet/serval/bench/internal/report"
)

// external runs the driver another part of bench/ provides, bench/<dir>:
// bench/<dir>/run.sh, or else the main package bench/<dir>/cmd/driver
// (other commands under bench/<dir>/cmd are its tools, not drivers). It reports false when there is none. The driver writes
// its figures to standard output as JSON, either one record per line or one
// array: {"name", "value", "unit", "samples", "ratio_to", "ratio", "stat"}
// (samples, when given, make value their median); lines that are not JSON
// are kept as notes. Its exit status decides the error.
func (s *Suite) external(ctx context.Context, part, dir string) (bool, error) {
	base := filepath.Join(s.Root, "bench", dir)
	var argv []string
	if st, err := os.Stat(filepath.Join(base, "run.sh")); err == nil && !st.IsDir() {
		argv = []string{"bash", filepath.Join("bench", dir, "run.sh")}
	} else if _, err := os.Stat(filepath.Join(base, "cmd", "driver", "main.go")); err == nil {
		argv = []string{"go", "run", "./" + filepath.ToSlash(filepath.Join("bench", dir, "cmd", "driver"))}
	} else {
		return false, nil
	}
	// A driver gets a bounded share of the run; what it printed before the
	// limit still counts.
	ctx, cancel := context.WithTimeout(ctx, DriverLimit)
	defer cancel()
	out, err := s.run(ctx, part, argv...)
	if ctx.Err() != nil {
		s.Report.Note(part, "%s was stopped after %s (the limit servalbench gives a driver); the figures it printed before are kept", strings.Join(argv, " "), DriverLimit)
	}
	n := s.ingest(part, out)
	if n == 0 && err == nil {
		s.Report.Note(part, "%s printed no figures", strings.Join(argv, " "))
	}
	return true, err
}

// DriverLimit bounds one external driver's run.
var DriverLimit = 8 * time.Minute

type extRecord struct {
	Name    string    `json:"name"`
	Value   *float64  `json:"value"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples"`
	RatioTo string    `json:"ratio_to"`
	Ratio   float64   `json:"ratio"`
	Stat    string    `json:"stat"`
}

// ingest adds the records in out to the report and returns how many.
func (s *Suite) ingest(part, out string) int {
	var recs []extRecord
	trimmed := strings.TrimSpace(out)
	if strings.HasPrefix(trimmed, "[") && json.Unmarshal([]byte(trimmed), &recs) == nil {
		// one array
	} else {
		for _, line := range strings.Split(out, "\n") {
			line = strings.TrimSpace(line)
			var r extRecord
			if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &r) == nil && r.Name != "" {
				recs = append(recs, r)
			} else if line != "" && len(line) < 300 {
				s.Report.Note(part, "%s", line)
			}
		}
	}
	for _, r := range recs {
		f := report.Figure{Part: part, Name: r.Name, Unit: r.Unit, Samples: r.Samples, Stat: r.Stat, RatioTo: r.RatioTo, Ratio: r.Ratio}
		if len(r.Samples) == 0 && r.Value != nil {
			f.Value = *r.Value
		}
		s.Report.Add(f)
	}
	return len(recs)
}
