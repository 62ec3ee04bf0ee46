package selector

import "testing"

// benchLabels is a typical workload endpoint: a handful of labels, including
// the namespace label every namespaced endpoint carries.
var benchLabels = map[string]string{
	"role":         "db",
	"env":          "prod",
	"app":          "postgres",
	"tier":         "backend",
	NamespaceLabel: "shop",
}

// The selector matches benchLabels, so every one of its terms is evaluated.
const benchSelector = `role == 'db' && env in {'prod', 'staging'} && !has(deprecated)`

func BenchmarkEvaluate(b *testing.B) {
	sel, err := Parse(benchSelector)
	if err != nil {
		b.Fatal(err)
	}
	if !sel.Evaluate(benchLabels) {
		b.Fatal("benchmark selector does not match")
	}
	b.ReportAllocs()
	for b.Loop() {
		sel.Evaluate(benchLabels)
	}
}

func BenchmarkEvaluateLabels(b *testing.B) {
	sel, err := Parse(benchSelector)
	if err != nil {
		b.Fatal(err)
	}
	labels := MapLabels(benchLabels)
	b.ReportAllocs()
	for b.Loop() {
		sel.EvaluateLabels(labels)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchSelector); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUniqueID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sel, err := Parse(benchSelector)
		if err != nil {
			b.Fatal(err)
		}
		sel.UniqueID()
	}
}
