package api

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/valid")

// defaultAndValidate applies defaults and validates, as the datastore does
// before every write, and returns the problems one per line.
func defaultAndValidate(r Resource) []string {
	r.SetDefaults()
	if err := Validate(r); err != nil {
		return strings.Split(err.Error(), "\n")
	}
	return nil
}

// marshalDocs renders resources as multi-document YAML.
func marshalDocs(t *testing.T, rs []Resource) []byte {
	t.Helper()
	var out bytes.Buffer
	for i, r := range rs {
		if i > 0 {
			out.WriteString("---\n")
		}
		b, err := yaml.Marshal(r)
		if err != nil {
			t.Fatalf("marshal %s: %v", KeyOf(r), err)
		}
		out.Write(b)
	}
	return out.Bytes()
}

// TestValidManifests decodes every manifest of testdata/valid (Calico's
// reference samples and more), applies defaults, validates, and compares
// the defaulted resources with the golden file next to each manifest.
func TestValidManifests(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in testdata/valid")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := Decode(file, data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			var rs []Resource
			for _, d := range docs {
				if problems := defaultAndValidate(d.Resource); problems != nil {
					t.Errorf("%s: unexpected problems:\n%s", d.Where(), strings.Join(problems, "\n"))
				}
				rs = append(rs, d.Resource)
			}
			got := marshalDocs(t, rs)

			// Defaults are idempotent, and the output decodes back to itself.
			for _, r := range rs {
				r.SetDefaults()
			}
			if again := marshalDocs(t, rs); !bytes.Equal(again, got) {
				t.Errorf("SetDefaults is not idempotent:\n%s\nthen\n%s", got, again)
			}
			redocs, err := Decode("golden", got)
			if err != nil {
				t.Fatalf("decoding the defaulted output: %v", err)
			}
			var rs2 []Resource
			for _, d := range redocs {
				rs2 = append(rs2, d.Resource)
			}
			if back := marshalDocs(t, rs2); !bytes.Equal(back, got) {
				t.Errorf("output does not round-trip:\n%s\nthen\n%s", got, back)
			}

			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("defaulted output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// invalidCase is one document of testdata/invalid with the problems it must
// produce: each "# want: " line is part of exactly one reported line, and
// nothing else is reported.
type invalidCase struct {
	name  string
	line  int
	text  string
	wants []string
}

func readInvalidCases(t *testing.T, file string) []invalidCase {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cases []invalidCase
	line := 1
	for _, chunk := range strings.Split(string(data), "\n---\n") {
		c := invalidCase{line: line, text: chunk}
		for _, l := range strings.Split(chunk, "\n") {
			if w, ok := strings.CutPrefix(l, "# want: "); ok {
				c.wants = append(c.wants, w)
			}
			if n, ok := strings.CutPrefix(l, "metadata: {name: "); ok && c.name == "" {
				c.name, _, _ = strings.Cut(n, ",")
				c.name = strings.TrimSuffix(c.name, "}")
			}
			if n, ok := strings.CutPrefix(l, "  name: "); ok && c.name == "" {
				c.name = n
			}
		}
		if c.name == "" {
			c.name = "unnamed"
		}
		c.name = strings.Join([]string{filepath.Base(file), c.name}, "/")
		cases = append(cases, c)
		line += strings.Count(chunk, "\n") + 2
	}
	return cases
}

// TestInvalidManifests checks that every document of testdata/invalid is
// rejected with exactly the problems it lists, each at its field path.
func TestInvalidManifests(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	total := 0
	for _, file := range files {
		for _, c := range readInvalidCases(t, file) {
			total++
			t.Run(c.name, func(t *testing.T) {
				if len(c.wants) == 0 {
					t.Fatalf("line %d: a case without any '# want:' line", c.line)
				}
				var got []string
				docs, err := Decode("case.yaml", []byte(c.text))
				if err != nil {
					got = strings.Split(err.Error(), "\n")
				}
				for _, d := range docs {
					got = append(got, defaultAndValidate(d.Resource)...)
				}
				used := make([]bool, len(got))
				for _, w := range c.wants {
					found := false
					for i, g := range got {
						if !used[i] && strings.Contains(g, w) {
							used[i], found = true, true
							break
						}
					}
					if !found {
						t.Errorf("line %d: no problem reported matches %q", c.line, w)
					}
				}
				for i, g := range got {
					if !used[i] {
						t.Errorf("line %d: unexpected problem: %s", c.line, g)
					}
				}
			})
		}
	}
	if total < 50 {
		t.Errorf("only %d invalid cases found", total)
	}
}
