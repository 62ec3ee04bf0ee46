package report

import (
	"math"
	"slices"
)

// Median of xs; NaN when xs is empty.
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// Percentile p (0..100) of xs by the nearest-rank method on a sorted copy,
// so that p99 of 50 samples is the largest but none; NaN when xs is empty.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if p <= 0 {
		return s[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// Spread is the range of xs as a fraction of their median (0.05 = the
// samples lie within 5% of the median's size); 0 for fewer than two samples
// or a zero median.
func Spread(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := Median(xs)
	if m == 0 || math.IsNaN(m) {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / math.Abs(m)
}

// pairedRatios returns xs[i]/ys[i] for each round i when xs and ys hold
// one sample per round of the same rounds (equal lengths), nil otherwise
// or when some ys[i] is zero: a ratio's spread is only meaningful between
// samples taken side by side.
func pairedRatios(xs, ys []float64) []float64 {
	if len(xs) != len(ys) || len(xs) == 0 {
		return nil
	}
	rs := make([]float64, len(xs))
	for i := range xs {
		if ys[i] == 0 {
			return nil
		}
		rs[i] = xs[i] / ys[i]
	}
	return rs
}
