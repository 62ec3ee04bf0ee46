package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	Cores   int    `json:"cores"`
	CPU     string `json:"cpu"`
	Kernel  string `json:"kernel"`
	MemMiB  int    `json:"mem_mib"`
	Go      string `json:"go"`
	Commit  string `json:"commit"`
	Load    string `json:"load_at_start"`
	Started time.Time
}

// Figure is one measured quantity. When Samples is set, Value is their
// median and Spread their range relative to it; otherwise Value is taken
// as given (a p99 computed over many samples, for instance) and Runs says
// how many measurements it summarises.
type Figure struct {
	Part    string  `json:"part"`
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	RatioTo string  `json:"ratio_to,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
	// RatioSpread is the spread of the per-round ratios (sample i over
	// the other figure's sample i) when both figures have the same number
	// of samples, taken in the same interleaved rounds; RatioRounds is how
	// many (0: not paired, no spread).
	RatioSpread float64   `json:"ratio_spread,omitempty"`
	RatioRounds int       `json:"ratio_rounds,omitempty"`
	Samples     []float64 `json:"samples,omitempty"`
	Spread      float64   `json:"spread"`
	Runs        int       `json:"runs"`
	// Stat says what Value is ("median of 3 runs", "p99 of 50 changes").
	Stat string `json:"stat,omitempty"`
}

// Target is one aim of the issue and whether this run met it.
type Target struct {
	Part   string `json:"part"`
	What   string `json:"what"`
	Got    string `json:"got"`
	Status string `json:"status"` // met | not met | not measured
	Limit  string `json:"limit,omitempty"`
}

// Target statuses.
const (
	Met         = "met"
	NotMet      = "not met"
	NotMeasured = "not measured"
)

// Report collects the figures of one run. It is safe for concurrent use.
type Report struct {
	mu      sync.Mutex
	Machine Machine
	// Root is the repository's absolute path. Commands and notes name it
	// "." and the files under it by their relative paths: a report is
	// committed, and the path of one machine's checkout means nothing on
	// another's (nor should it publish that machine's layout).
	Root     string
	figures  []*Figure
	targets  []Target
	commands map[string][]string
	notes    map[string][]string
	parts    []string
}

// New returns an empty report for a run on m.
func New(m Machine) *Report {
	return &Report{Machine: m, commands: map[string][]string{}, notes: map[string][]string{}}
}

func (r *Report) part(p string) {
	for _, x := range r.parts {
		if x == p {
			return
		}
	}
	r.parts = append(r.parts, p)
}

// Add records f, computing Value, Spread and Runs from its samples.
func (r *Report) Add(f Figure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(f.Samples) > 0 {
		f.Value = Median(f.Samples)
		f.Spread = Spread(f.Samples)
		f.Runs = len(f.Samples)
		if f.Stat == "" {
			f.Stat = fmt.Sprintf("median of %d", len(f.Samples))
		}
	}
	if f.Runs == 0 {
		f.Runs = 1
	}
	r.part(f.Part)
	r.figures = append(r.figures, &f)
}

// Get returns the figure called name, or nil.
func (r *Report) Get(name string) *Figure {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.figures {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Ratio sets name's ratio to the figure called to; it does nothing when
// either is missing or to is zero, and says so with false.
func (r *Report) Ratio(name, to string) bool {
	f, g := r.Get(name), r.Get(to)
	if f == nil || g == nil || g.Value == 0 || math.IsNaN(g.Value) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f.RatioTo, f.Ratio = to, f.Value/g.Value
	f.RatioSpread, f.RatioRounds = 0, 0
	if rs := pairedRatios(f.Samples, g.Samples); len(rs) > 1 {
		f.RatioSpread, f.RatioRounds = Spread(rs), len(rs)
	}
	return true
}

// Command records a command line that produced part's figures.
func (r *Report) Command(part, cmd string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.part(part)
	r.commands[part] = append(r.commands[part], r.relative(cmd))
}

// Note records a remark about how part was measured or what limited it.
func (r *Report) Note(part, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.part(part)
	r.notes[part] = append(r.notes[part], r.relative(fmt.Sprintf(format, args...)))
}

// relative rewrites Root's absolute paths in text as relative ones:
// Root/bin/x as bin/x, Root itself as ".".
func (r *Report) relative(text string) string {
	root := filepath.Clean(r.Root)
	if r.Root == "" || root == "/" {
		return text
	}
	text = strings.ReplaceAll(text, root+"/", "")
	return strings.ReplaceAll(text, root, ".")
}

// AddTarget records whether an aim of the issue was met.
func (r *Report) AddTarget(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.part(t.Part)
	r.targets = append(r.targets, t)
}

// Check records a target that holds when got <op> want, where op is "<" or
// ">=" (or "<=" ); a missing figure makes it "not measured".
func (r *Report) Check(part, what, name string, useRatio bool, op string, want float64, limit string) {
	f := r.Get(name)
	t := Target{Part: part, What: what, Limit: limit, Status: NotMeasured, Got: "—"}
	if f != nil && !math.IsNaN(f.Value) {
		v := f.Value
		if useRatio {
			v = f.Ratio
			t.Got = fmt.Sprintf("%.3g× (%s)", v, name)
			if f.RatioRounds > 1 {
				t.Got = fmt.Sprintf("%.3g× (%s; spread of the %d rounds' ratios %.0f%%)", v, name, f.RatioRounds, f.RatioSpread*100)
			}
		} else {
			t.Got = fmt.Sprintf("%s %s (%s)", num(v), f.Unit, name)
		}
		ok := false
		switch op {
		case "<":
			ok = v < want
		case "<=":
			ok = v <= want
		case ">=":
			ok = v >= want
		}
		t.Status = NotMet
		if ok {
			t.Status, t.Limit = Met, ""
		}
	}
	r.AddTarget(t)
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// record is one line of results.json.
type record struct {
	Name    string    `json:"name"`
	Value   *float64  `json:"value"`
	Unit    string    `json:"unit"`
	RatioTo *string   `json:"ratio_to"`
	Ratio   *float64  `json:"ratio"`
	Part    string    `json:"part"`
	Stat    string    `json:"stat,omitempty"`
	Runs    int       `json:"runs"`
	Spread  float64   `json:"spread"`
	Samples []float64 `json:"samples,omitempty"`
	// RatioSpread: the spread of the per-round ratios, when paired.
	RatioSpread *float64 `json:"ratio_spread,omitempty"`
}

// WriteJSON writes the figures as an array of records.
func (r *Report) WriteJSON(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs := make([]record, 0, len(r.figures))
	for _, f := range r.figures {
		rec := record{Name: f.Part + "." + f.Name, Unit: f.Unit, Part: f.Part, Stat: f.Stat, Runs: f.Runs, Spread: round(f.Spread), Samples: f.Samples}
		if !math.IsNaN(f.Value) && !math.IsInf(f.Value, 0) {
			v := round(f.Value)
			rec.Value = &v
		}
		if f.RatioTo != "" {
			to, ratio := f.Part+"."+f.RatioTo, round(f.Ratio)
			if g := r.find(f.RatioTo); g != nil {
				to = g.Part + "." + f.RatioTo
			}
			rec.RatioTo, rec.Ratio = &to, &ratio
			if f.RatioRounds > 1 {
				rs := round(f.RatioSpread)
				rec.RatioSpread = &rs
			}
		}
		recs = append(recs, rec)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(recs)
}

func (r *Report) find(name string) *Figure {
	for _, f := range r.figures {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func round(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e4) / 1e4
}

// WriteMarkdown writes REPORT.md: the machine, then per part the commands,
// a table of figures and the notes, then the targets.
func (r *Report) WriteMarkdown(w io.Writer, took time.Duration, intro string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# Serval benchmark report\n\n%s\n\n", strings.TrimSpace(intro))
	fmt.Fprintf(&b, "## Machine and run\n\n")
	fmt.Fprintf(&b, "- date: %s (run took %s)\n", m.Started.UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintf(&b, "- cores: %d (%s), memory %d MiB\n", m.Cores, m.CPU, m.MemMiB)
	fmt.Fprintf(&b, "- kernel: %s\n- %s, commit %s\n- load average at start: %s\n\n", m.Kernel, m.Go, m.Commit, m.Load)
	fmt.Fprintf(&b, "Value = median of the runs (or the stated percentile); spread = (max − min) / median over those runs. Ratios compare figures of this same run: the ratio of the two medians; where both figures were measured in the same interleaved rounds, the ratio's spread is that of the per-round ratios (round i's value over the other figure's round i).\n\n")

	b.WriteString("## Targets\n\n| part | target | this run | status | what limits it |\n|---|---|---|---|---|\n")
	for _, t := range r.targets {
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** | %s |\n", t.Part, t.What, t.Got, t.Status, t.Limit)
	}
	b.WriteString("\n")
	for _, p := range r.parts {
		fmt.Fprintf(&b, "## %s\n\n", p)
		if cmds := r.commands[p]; len(cmds) > 0 {
			b.WriteString("Commands:\n\n")
			for _, c := range cmds {
				fmt.Fprintf(&b, "    %s\n", c)
			}
			b.WriteString("\n")
		}
		var rows []string
		for _, f := range r.figures {
			if f.Part != p {
				continue
			}
			ratio := ""
			if f.RatioTo != "" {
				ratio = fmt.Sprintf("%.3g× %s", f.Ratio, f.RatioTo)
				if f.RatioRounds > 1 {
					ratio += fmt.Sprintf(" (spread %.0f%% over %d rounds)", f.RatioSpread*100, f.RatioRounds)
				}
			}
			spread := "—"
			if len(f.Samples) > 1 {
				spread = fmt.Sprintf("%.0f%%", f.Spread*100)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", f.Name, num(f.Value), f.Unit, f.Stat, spread, ratio))
		}
		if len(rows) > 0 {
			b.WriteString("| figure | value | unit | what | spread | ratio |\n|---|---|---|---|---|---|\n")
			b.WriteString(strings.Join(rows, "\n"))
			b.WriteString("\n\n")
		}
		for _, n := range r.notes[p] {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(r.notes[p]) > 0 {
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteFiles writes REPORT.md and results.json.
func (r *Report) WriteFiles(mdPath, jsonPath string, took time.Duration, intro string) error {
	var md strings.Builder
	if err := r.WriteMarkdown(&md, took, intro); err != nil {
		return err
	}
	if err := os.WriteFile(mdPath, []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", mdPath, err)
	}
	var js strings.Builder
	if err := r.WriteJSON(&js); err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, []byte(js.String()), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", jsonPath, err)
	}
	return nil
}
