// Package runner runs the parts of `make bench` and records their figures
// in a report.Report: dataplane (iperf3 and ping through Serval beside the
// hand-built reference dataplanes of reference.go), control
// (policy propagation and workload reachability on a multi-host lab, agent
// cold start and change latency against a synthetic datastore), cni (CNI
// and IPAM benchmarks), bgp (bench/bgp when present, else the routing
// benchmark), scale (the curves) and micro (Go benchmarks of the hot paths).
//
// Every part records the commands it ran, so that REPORT.md says exactly
// how each figure was obtained. Parts never fail the whole run: a part that
// cannot measure something says so in a note and leaves the target "not
// measured".
//
//	s := &runner.Suite{Root: ".", Report: rep, Log: log}
//	err := s.Run(ctx, []string{"dataplane", "micro"})
package runner
