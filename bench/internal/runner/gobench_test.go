package runner

import (
	"reflect"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkEvaluate-2   	 1000000	      1042 ns/op	     16 B/op	       1 allocs/op
BenchmarkEvaluate-2   	 1000000	      1100 ns/op	     16 B/op	       1 allocs/op
BenchmarkCNI/sequential-100-2         	       1	3893412 ns/op	        36.1 add-p50-ms	        59.0 add-p99-ms
--- FAIL: BenchmarkBroken
BenchmarkBroken-2 --- FAIL
PASS
`
	got := ParseGoBench(out)
	want := BenchResults{
		"Evaluate":           {"ns/op": {1042, 1100}, "B/op": {16, 16}, "allocs/op": {1, 1}},
		"CNI/sequential-100": {"ns/op": {3893412}, "add-p50-ms": {36.1}, "add-p99-ms": {59}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseGoBench =\n%v\nwant\n%v", got, want)
	}
}
