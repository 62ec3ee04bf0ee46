// Package policy measures what policy costs the traffic that walks it: new
// TCP connections per second and the latency of a connection's first packet
// (connect() returns when the SYN-ACK arrives, so its duration is the
// SYN→SYN-ACK round trip through the host's firewall), with 0 to thousands
// of policies installed.
//
// Load and Serve are the load tool (cmd/connload wraps them for use inside
// any namespace); the root benchmark BenchmarkConnRate builds a "host"
// network namespace with two workload namespaces behind it, programs the
// host with internal/dataplane directly (no datastore, no agent), and runs
// the load from one workload to the other:
//
//	go test -run '^$' -bench ConnRate -benchtime 1x ./bench/policy/
//
// Beside Serval's table, the same benchmark runs a linear-chain series
// ("iptables=N", iptables_test.go): no Serval table, the host routed by
// hand, and an iptables FORWARD chain of N non-matching rules ahead of the
// accept, after the same conntrack shortcut, loaded with iptables-nft
// (SERVAL_BENCH_IPTABLES=legacy for iptables-legacy), so that the two
// curves show what sets and verdict maps buy over a rule list.
//
// Established packets skip policy through conntrack; only the first packet
// of each connection walks the rules, so connections per second is where
// a longer chain would show.
package policy
