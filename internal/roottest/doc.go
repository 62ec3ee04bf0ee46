// Package roottest is how a test says what it needs from the machine: root
// (network namespaces, nftables, routes) or a program the project declares
// as a dependency (scripts/install-deps.sh installs them all: etcd, the
// CNI reference plugins, iptables, BIRD, FRR, iperf3, nft, ...).
//
// Both FAIL the test when missing, never skip it. A skipped test counts as
// passed while proving nothing, so a CI run without root, or on a machine
// missing a package, would look green with its namespace tests never run.
// Tests that need neither do not call these, so a developer without root
// can still run any package of pure unit tests (go test ./internal/api)
// and select the rest with -run.
//
//	func TestKernel(t *testing.T) {
//		roottest.NeedRoot(t, "creates a network namespace")
//		roottest.NeedProgram(t, "nft", "nftables")
//		...
//	}
package roottest
