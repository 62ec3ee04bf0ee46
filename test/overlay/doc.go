// Package overlay tests the VXLAN overlay end to end in serval-lab: hosts
// on two subnets behind a router that forwards and learns no workload
// routes, real serval-node, etcd, CNI plugin and kernel. The tests need
// root; run them under the shared lock of root tests.
package overlay
