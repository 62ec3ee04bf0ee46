// Package report holds the figures a benchmark run measured and writes them
// out: bench/REPORT.md for people and bench/results.json for scripts.
//
// A Figure is one named quantity measured several times in one run; its
// value is the median of the samples and its spread the range they covered
// (min..max), because on a shared machine one slow sample says more about
// the neighbours than about the code. A ratio compares two figures of the
// same run, never a figure with one from another day.
//
//	r := report.New(machine)
//	r.Add(report.Figure{Part: "dataplane", Name: "serval.tcp_gbps", Unit: "Gbit/s", Samples: []float64{9.1, 9.4, 9.2}})
//	r.Ratio("dataplane", "serval.tcp_gbps", "routed.tcp_gbps")
//	err := r.WriteFiles("bench/REPORT.md", "bench/results.json")
package report
