package report

import (
	"math"
	"testing"
)

func TestPercentiles(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // unsorted on purpose
	}
	for _, tc := range []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"median odd", []float64{3, 1, 2}, 50, 2},
		{"median even takes the lower", []float64{4, 1, 3, 2}, 50, 2},
		{"p99 of 100", hundred, 99, 99},
		{"p100", hundred, 100, 100},
		{"p0", hundred, 0, 1},
		{"one sample", []float64{7}, 99, 7},
	} {
		if got := Percentile(tc.xs, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{9, 10, 11}, 0.2},
		{[]float64{10}, 0},
		{[]float64{0, 0}, 0},
		{nil, 0},
	} {
		if got := Spread(tc.xs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Spread(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestPairedRatios(t *testing.T) {
	tests := []struct {
		name   string
		xs, ys []float64
		want   []float64
	}{
		{"rounds", []float64{9, 10, 12}, []float64{10, 10, 8}, []float64{0.9, 1, 1.5}},
		{"a round missing on one side", []float64{9, 10}, []float64{10, 10, 8}, nil},
		{"a zero", []float64{1, 2}, []float64{1, 0}, nil},
		{"none", nil, nil, nil},
	}
	for _, tt := range tests {
		got := pairedRatios(tt.xs, tt.ys)
		if len(got) != len(tt.want) {
			t.Errorf("%s: pairedRatios = %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if math.Abs(got[i]-tt.want[i]) > 1e-9 {
				t.Errorf("%s: pairedRatios = %v, want %v", tt.name, got, tt.want)
				break
			}
		}
	}
}
